// Parapheur pages: small conveniences; every form works without them.
(function () {
  "use strict";

  // "Select all" checkbox of the batch-signing table.
  document.querySelectorAll("[data-select-all]").forEach(function (master) {
    var name = master.getAttribute("data-select-all");
    master.addEventListener("change", function () {
      document.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (box) {
        box.checked = master.checked;
      });
    });
  });

  // Deposit form: show the ad-hoc step table only for the ad-hoc circuit.
  var steps = document.getElementById("adhoc-steps");
  var radios = document.querySelectorAll("input[data-circuit]");
  function sync() {
    var adhoc = Array.prototype.some.call(radios, function (r) { return r.checked && r.value === "adhoc"; });
    if (steps) { steps.hidden = !adhoc; }
  }
  radios.forEach(function (r) { r.addEventListener("change", sync); });
  sync();

  // htmx requests carry the CSRF token of the page (for any POST made with hx-post).
  document.body.addEventListener("htmx:configRequest", function (event) {
    var token = document.querySelector('input[name="csrf_token"]');
    if (token) { event.detail.headers["X-CSRFToken"] = token.value; }
  });
})();

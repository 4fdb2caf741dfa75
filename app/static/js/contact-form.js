// Contact form: show the person's or the organisation's fields according to the chosen kind
// (both stay in the page, so the form still works without JavaScript).
(function () {
  "use strict";
  var form = document.querySelector("[data-contact-form]");
  if (!form) { return; }
  function update() {
    var checked = form.querySelector("input[name=kind]:checked");
    var kind = checked ? checked.value : "person";
    form.querySelectorAll("fieldset[data-kind]").forEach(function (fieldset) {
      fieldset.hidden = fieldset.dataset.kind !== kind;
    });
  }
  form.addEventListener("change", function (event) {
    if (event.target.name === "kind") { update(); }
  });
  update();
})();

// The task page: draws the circuit with bpmn-js (read-only viewer, bpmn.io watermark kept)
// and highlights the current step; brings the error summary into view after a refusal.
(function () {
  "use strict";
  var errors = document.getElementById("form-errors");
  if (errors) { errors.focus(); }
  var container = document.getElementById("diagram");
  if (!container || typeof window.BpmnJS !== "function") { return; }
  var viewer = new window.BpmnJS({ container: container });
  fetch(container.getAttribute("data-diagram-url"), { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.text();
    })
    .then(function (xml) { return viewer.importXML(xml); })
    .then(function () {
      var canvas = viewer.get("canvas");
      canvas.zoom("fit-viewport");
      var current = container.getAttribute("data-current");
      if (current) {
        try { canvas.addMarker(current, "current-step"); } catch (e) { /* not drawn */ }
      }
      container.setAttribute("data-rendered", "true");
    })
    .catch(function (error) {
      container.textContent = "Le schéma du circuit n'a pas pu être affiché (" + error.message + ").";
      container.setAttribute("data-rendered", "error");
    });
})();

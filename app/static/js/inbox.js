// The task list: keyboard shortcuts (j/k move, Enter opens, c claims, x checks, / searches,
// ? lists them) and "check all". Rows are focusable so screen readers announce them.
(function () {
  "use strict";
  var table = document.getElementById("task-list");
  if (!table) { return; }
  var rows = Array.prototype.slice.call(table.querySelectorAll("tr[data-task-row]"));
  var live = document.getElementById("inbox-live");
  var dialog = document.getElementById("shortcuts");
  var current = -1;

  rows.forEach(function (row, index) {
    row.tabIndex = index === 0 ? 0 : -1;
    row.addEventListener("focus", function () { select(index, false); });
  });

  function titleOf(row) {
    var link = row.querySelector("[data-task-link]");
    return link ? link.textContent.trim() : "";
  }

  function select(index, focus) {
    if (!rows.length) { return; }
    index = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (row, i) {
      row.setAttribute("aria-selected", i === index ? "true" : "false");
      row.tabIndex = i === index ? 0 : -1;
    });
    if (current !== index && live) {
      live.textContent = "Tâche " + (index + 1) + " sur " + rows.length + " : " + titleOf(rows[index]);
    }
    current = index;
    if (focus) { rows[index].focus(); }
  }

  function typing(target) {
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (typing(event.target) || (dialog && dialog.open)) { return; }
    var row = rows[current];
    switch (event.key) {
      case "j": select(current + 1, true); break;
      case "k": select(current < 0 ? 0 : current - 1, true); break;
      case "Enter":
        if (row && (event.target === row || event.target === document.body)) {
          window.location.assign(row.getAttribute("data-url"));
        } else { return; }
        break;
      case "c":
        if (!row) { return; }
        var claim = row.querySelector("[data-claim]");
        if (claim) { claim.click(); } else if (live) { live.textContent = "Cette tâche ne peut pas être prise."; }
        break;
      case "x":
        if (!row) { return; }
        var box = row.querySelector("input[type=checkbox]");
        if (box) { box.checked = !box.checked; }
        break;
      case "/":
        var search = document.getElementById("f-q");
        if (search) { search.focus(); } else { return; }
        break;
      case "?":
        if (dialog && dialog.showModal) { dialog.showModal(); }
        break;
      default: return;
    }
    event.preventDefault();
  });

  document.querySelectorAll("[data-shortcuts-open]").forEach(function (button) {
    button.addEventListener("click", function () { if (dialog) { dialog.showModal(); } });
  });
  var all = table.querySelector("[data-select-all]");
  if (all) {
    all.addEventListener("change", function () {
      rows.forEach(function (row) {
        var box = row.querySelector("input[type=checkbox]");
        if (box) { box.checked = all.checked; }
      });
    });
  }
})();

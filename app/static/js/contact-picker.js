// The contact picker (templates/contacts/macros.html): keyboard and mouse selection in the
// htmx suggestion list; the chosen contact's id goes into the hidden field.
(function () {
  "use strict";
  if (window.missiveContactPicker) { return; }
  window.missiveContactPicker = true;

  function parts(element) {
    var root = element.closest("[data-contact-picker]");
    if (!root) { return null; }
    return {
      root: root,
      input: root.querySelector("[data-picker-input]"),
      value: root.querySelector("[data-picker-value]"),
      list: root.querySelector("[data-picker-options]"),
      status: root.querySelector("[data-picker-status]")
    };
  }

  function options(p) {
    return Array.prototype.slice.call(p.list.querySelectorAll("[role=option]:not([aria-disabled])"));
  }

  function close(p) {
    p.list.innerHTML = "";
    p.input.setAttribute("aria-expanded", "false");
    p.input.removeAttribute("aria-activedescendant");
  }

  function highlight(p, option) {
    options(p).forEach(function (o) { o.setAttribute("aria-selected", o === option ? "true" : "false"); });
    if (option) {
      p.input.setAttribute("aria-activedescendant", option.id || "");
      option.scrollIntoView({ block: "nearest" });
    }
  }

  function choose(p, option) {
    if (!option) { return; }
    if (option.dataset.create) { window.location.href = option.dataset.create; return; }
    p.value.value = option.dataset.id;
    p.input.value = option.dataset.label;
    if (p.status) { p.status.textContent = option.dataset.label + " sélectionné"; }
    close(p);
    p.root.dispatchEvent(new CustomEvent("contact:selected", { bubbles: true, detail: { id: option.dataset.id, label: option.dataset.label } }));
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    var p = parts(event.target);
    if (!p || event.target !== p.list) { return; }
    var count = options(p).length;
    p.input.setAttribute("aria-expanded", count ? "true" : "false");
    if (p.status) { p.status.textContent = count ? count + " suggestion(s)" : ""; }
  });

  document.addEventListener("input", function (event) {
    var p = parts(event.target);
    if (p && event.target === p.input) { p.value.value = ""; }
  });

  document.addEventListener("keydown", function (event) {
    var p = parts(event.target);
    if (!p || event.target !== p.input) { return; }
    var list = options(p);
    var current = p.list.querySelector("[aria-selected=true]");
    var index = list.indexOf(current);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!list.length) { return; }
      index = event.key === "ArrowDown" ? Math.min(index + 1, list.length - 1) : Math.max(index - 1, 0);
      highlight(p, list[index]);
    } else if (event.key === "Enter" && current) {
      event.preventDefault();
      choose(p, current);
    } else if (event.key === "Escape") {
      close(p);
    }
  });

  document.addEventListener("click", function (event) {
    var option = event.target.closest("[data-contact-picker] [role=option]");
    if (option && !option.hasAttribute("aria-disabled")) {
      choose(parts(option), option);
      return;
    }
    document.querySelectorAll("[data-contact-picker]").forEach(function (root) {
      if (!root.contains(event.target)) { close(parts(root)); }
    });
  });
})();

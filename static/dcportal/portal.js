/* dcportal: the few behaviours every page shares. Plain JavaScript beside htmx; every page also
   works without it (links and forms). */
(function () {
  "use strict";

  // "/" focuses the search of the page's table, as in most consoles; never while typing.
  // Chart marks are pointer shortcuts to the list behind them (the figures table beside each
  // chart holds the same links for the keyboard and screen readers).
  document.addEventListener("click", function (event) {
    var mark = event.target.closest && event.target.closest("svg [data-href]");
    if (mark) window.location.assign(mark.getAttribute("data-href"));
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target.closest("input, textarea, select, [contenteditable], .CodeMirror")) return;
    var search = document.querySelector("[data-search]");
    if (search) {
      event.preventDefault();
      search.focus();
      search.select();
    }
  });

  // Row selection: "select all" for the page, the count, and bulk buttons that need rows.
  function refreshSelection(form) {
    var boxes = form.querySelectorAll("input[name=ids]");
    var chosen = form.querySelectorAll("input[name=ids]:checked").length;
    var count = form.querySelector("[data-selected-count]");
    if (count) count.textContent = chosen + " selected";
    form.querySelectorAll("[data-needs-selection]").forEach(function (button) {
      button.disabled = chosen === 0;
    });
    var all = form.querySelector("[data-select-all]");
    if (all) {
      all.checked = chosen > 0 && chosen === boxes.length;
      all.indeterminate = chosen > 0 && chosen < boxes.length;
    }
  }
  document.addEventListener("change", function (event) {
    var form = event.target.closest("form[data-selection]");
    if (!form) return;
    if (event.target.matches("[data-select-all]")) {
      form.querySelectorAll("input[name=ids]").forEach(function (box) {
        box.checked = event.target.checked;
      });
    }
    refreshSelection(form);
  });
  function initSelection(root) {
    (root || document).querySelectorAll("form[data-selection]").forEach(refreshSelection);
  }

  // Dialogs: a link with data-dialog opens its page's form in the shared <dialog>; the form
  // posts there with htmx. A saved form answers "dcportal:saved": the dialog closes and the
  // list behind it reloads. Unsaved changes are never dropped without asking.
  var dialog = null;
  var dirty = false;

  function dialogBody() {
    return dialog.querySelector("[data-dialog-body]");
  }

  function closeDialog(force) {
    if (!dialog || !dialog.open) return true;
    if (dirty && !force && !window.confirm("Discard your unsaved changes?")) return false;
    dirty = false;
    dialog.close();
    dialogBody().innerHTML = "";
    return true;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-dialog]");
    if (link && dialog && window.htmx) {
      event.preventDefault();
      dirty = false;
      dialog.querySelector("[data-dialog-title]").textContent = link.dataset.dialog || link.textContent;
      htmx.ajax("GET", link.href, {target: dialogBody(), select: "[data-dialog-form]", swap: "innerHTML"})
        .then(function () {
          if (!dialog.open) dialog.showModal();
          var first = dialogBody().querySelector("input:not([type=hidden]), select, textarea");
          if (first) first.focus();
        });
      return;
    }
    if (event.target.closest("[data-dialog-close]") && dialog && dialog.open) {
      event.preventDefault();
      closeDialog(false);
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target.closest("[data-dialog-form], form[data-guard]")) dirty = true;
  });

  window.addEventListener("beforeunload", function (event) {
    if (dirty) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  document.addEventListener("submit", function (event) {
    // A form being sent is not lost work.
    if (event.target.closest("[data-dialog-form], form[data-guard]")) dirty = false;
  });

  document.addEventListener("dcportal:saved", function (event) {
    dirty = false;
    closeDialog(true);
    var detail = event.detail || {};
    var region = document.querySelector(".table-region");
    if (region && window.htmx) {
      htmx.ajax("GET", window.location.href, {target: "#" + region.id, select: "#" + region.id, swap: "outerHTML"});
    } else if (detail.location) {
      window.location.assign(detail.location);
    }
    var status = document.querySelector("[data-live-status]");
    if (status && detail.message) status.textContent = detail.message;
  });

  document.addEventListener("DOMContentLoaded", function () {
    dialog = document.getElementById("portal-dialog");
    if (dialog) {
      // Esc: the browser's own "cancel"; ask first when something was typed.
      dialog.addEventListener("cancel", function (event) {
        // The dialog is closed (or kept) by closeDialog, never by the browser alone.
        event.preventDefault();
        closeDialog(false);
      });
    }
    initSelection(document);
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    initSelection(event.target);
    if (dialog && dialog.open && dialogBody().contains(event.target)) {
      var invalid = dialogBody().querySelector("[aria-invalid=true]");
      if (invalid) invalid.focus();
    }
  });
})();

/* The template editor: CodeMirror (Jinja2 highlighting, line numbers) over the form's own
   textarea, and a preview for a chosen server that follows the typing. Without this script the
   textarea and the Preview button (a page of its own) do the same work. */
(function () {
  "use strict";

  var DELAY = 500;

  function init() {
    var root = document.querySelector("[data-template-editor]");
    if (!root) return;
    var form = document.getElementById("template-form");
    var textarea = form.querySelector("textarea[name=content]");
    var server = document.getElementById("preview-server");
    var output = root.querySelector("[data-preview-output]");
    var status = root.querySelector("[data-preview-status]");
    var button = root.querySelector("[data-preview-button]");
    var url = root.dataset.previewUrl;
    var editor = null;
    var marked = null;
    var timer = null;
    var pending = null;

    if (window.CodeMirror && textarea) {
      editor = window.CodeMirror.fromTextArea(textarea, {
        mode: "jinja2",
        lineNumbers: true,
        indentUnit: 2,
        // Tab leaves the editor, as it leaves every other field: no keyboard trap.
        extraKeys: {Tab: false, "Shift-Tab": false},
      });
      var input = editor.getInputField();
      input.setAttribute("aria-labelledby", textarea.id + "-label");
      input.setAttribute("aria-multiline", "true");
      var keys = document.getElementById("editor-keys");
      var described = [textarea.getAttribute("aria-describedby"), keys ? keys.id : ""];
      var errors = document.getElementById(textarea.id + "-errors");
      if (errors) described.push(errors.id);
      input.setAttribute("aria-describedby", described.filter(Boolean).join(" "));
      if (textarea.getAttribute("aria-invalid")) input.setAttribute("aria-invalid", "true");
      if (keys) keys.hidden = false;
      var label = document.getElementById(textarea.id + "-label");
      if (label) {
        label.addEventListener("click", function (event) {
          event.preventDefault();
          editor.focus();
        });
      }
      editor.on("change", function () {
        editor.save();
        // The page's unsaved-changes guard listens for input on the form.
        textarea.dispatchEvent(new Event("input", {bubbles: true}));
        schedule(DELAY);
      });
      var firstError = errors && /^Line (\d+)/.exec(errors.textContent.trim());
      if (firstError) mark(firstError[1]);
    } else if (textarea) {
      textarea.addEventListener("input", function () { schedule(DELAY); });
    }

    function mark(line) {
      if (!editor) return;
      if (marked !== null) editor.removeLineClass(marked, "background", "cm-preview-error");
      marked = null;
      var number = parseInt(line, 10);
      if (number > 0 && number <= editor.lineCount()) {
        marked = editor.getLineHandle(number - 1);
        editor.addLineClass(marked, "background", "cm-preview-error");
      }
    }

    function say(text) {
      if (status.textContent !== text) status.textContent = text;
    }

    function schedule(delay) {
      window.clearTimeout(timer);
      timer = window.setTimeout(preview, delay);
    }

    function preview() {
      if (!server.value.trim()) {
        say("Choose a server to see the preview.");
        return;
      }
      if (editor) editor.save();
      var body = new FormData(form);
      body.set("fragment", "1");
      if (pending) pending.abort();
      pending = new AbortController();
      var token = form.querySelector("input[name=csrfmiddlewaretoken]");
      fetch(url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: {"X-CSRFToken": token ? token.value : ""},
        signal: pending.signal,
      })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          output.innerHTML = html;
          var result = output.querySelector("[data-preview-result]");
          mark(result ? result.dataset.errorLine : "");
          say(result ? result.dataset.summary || "" : "The preview could not be read.");
        })
        .catch(function (error) {
          if (error.name !== "AbortError") say("The preview could not be fetched: " + error.message);
        });
    }

    output.addEventListener("click", function (event) {
      var go = event.target.closest("[data-goto-line]");
      if (!go || !editor) return;
      var line = parseInt(go.dataset.gotoLine, 10) - 1;
      editor.focus();
      editor.setCursor({line: line, ch: 0});
      editor.scrollIntoView({line: line, ch: 0}, 80);
    });
    button.addEventListener("click", function (event) {
      event.preventDefault();
      schedule(0);
    });
    server.addEventListener("keydown", function (event) {
      // Enter here previews; it must not save the template.
      if (event.key === "Enter") {
        event.preventDefault();
        schedule(0);
      }
    });
    server.addEventListener("change", function () { schedule(0); });
    server.addEventListener("input", function () { schedule(DELAY * 2); });
    if (server.value.trim()) schedule(0);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

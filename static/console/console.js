// The console's own script: small enhancements on pages that work without it.
// Loaded from our origin (no inline script anywhere, for a strict CSP).
//
// 1. Automatic updates (htmx polling, hx-trigger="every Ns") that a person can
//    pause and resume; polls carry X-Auto-Update so they do not count as
//    activity for the session's idle timeout.
// 2. The news body editor's toolbar: wraps the selection in one of the few
//    tags the sanitiser keeps.
(function () {
  "use strict";

  function paused(elt) {
    var panel = elt.closest("[data-auto-update]");
    return panel !== null && panel.getAttribute("data-paused") === "true";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.closest && elt.closest("[data-auto-update]")) {
      event.detail.headers["X-Auto-Update"] = "1";
    }
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.closest && paused(elt)) {
      event.preventDefault();
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var panel = event.detail.target && event.detail.target.closest
      ? event.detail.target.closest("[data-auto-update]")
      : null;
    if (panel) {
      setupPauseButtons(panel.ownerDocument || document);
    }
  });

  function setupPauseButtons(root) {
    root.querySelectorAll("button[data-pause-for]").forEach(function (button) {
      if (button.getAttribute("data-ready") === "true") {
        return;
      }
      button.setAttribute("data-ready", "true");
      button.hidden = false;
      var panel = document.getElementById(button.getAttribute("data-pause-for"));
      if (!panel) {
        return;
      }
      var label = button.querySelector(".label");
      button.addEventListener("click", function () {
        var nowPaused = panel.getAttribute("data-paused") !== "true";
        panel.setAttribute("data-paused", nowPaused ? "true" : "false");
        button.setAttribute("aria-pressed", nowPaused ? "true" : "false");
        if (label) {
          label.textContent = nowPaused ? "자동 갱신 다시 시작" : "자동 갱신 멈춤";
        }
        var state = document.getElementById(button.getAttribute("data-pause-for") + "-state");
        if (state) {
          state.textContent = nowPaused ? "자동 갱신을 멈췄습니다." : "자동 갱신 중입니다.";
        }
      });
    });
    root.querySelectorAll("[data-no-js]").forEach(function (elt) {
      elt.hidden = true;
    });
    root.querySelectorAll("[data-js-only]").forEach(function (elt) {
      elt.hidden = false;
    });
  }

  var WRAP = {
    strong: ["<strong>", "</strong>"],
    em: ["<em>", "</em>"],
    h3: ["<h3>", "</h3>"],
    p: ["<p>", "</p>"],
    ul: ["<ul>\n<li>", "</li>\n</ul>"],
    a: ['<a href="https://">', "</a>"]
  };

  function setupEditors(root) {
    root.querySelectorAll("[data-editor-for]").forEach(function (toolbar) {
      if (toolbar.getAttribute("data-ready") === "true") {
        return;
      }
      toolbar.setAttribute("data-ready", "true");
      toolbar.hidden = false;
      var area = document.getElementById(toolbar.getAttribute("data-editor-for"));
      if (!area) {
        return;
      }
      toolbar.querySelectorAll("button[data-wrap]").forEach(function (button) {
        button.addEventListener("click", function () {
          var pair = WRAP[button.getAttribute("data-wrap")];
          var start = area.selectionStart;
          var end = area.selectionEnd;
          var text = area.value;
          area.value = text.slice(0, start) + pair[0] + text.slice(start, end) + pair[1] + text.slice(end);
          area.focus();
          area.setSelectionRange(start + pair[0].length, end + pair[0].length);
          area.dispatchEvent(new Event("input", { bubbles: true }));
        });
      });
    });
  }

  function ready() {
    setupPauseButtons(document);
    setupEditors(document);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();

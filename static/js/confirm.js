// Confirms the subscription without a second click. The server adds this
// script only when the link is opened well after the mail was made: mail
// scanners open links within seconds of delivery and get the page with the
// button alone. Without JavaScript the visible button does the same.
(function () {
  "use strict";
  var form = document.getElementById("confirm-form");
  if (!form || form.getAttribute("data-auto-submit") !== "true") {
    return;
  }
  function send() {
    if (form.getAttribute("data-sent") === "true") {
      return;
    }
    form.setAttribute("data-sent", "true");
    form.submit();
  }
  // A tab opened in the background (a preview pane, a prefetch) waits until
  // the person actually looks at it.
  if (document.visibilityState === "visible") {
    send();
  } else {
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") {
        send();
      }
    });
  }
})();

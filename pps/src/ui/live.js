// pps web UI: the Activity page follows new history lines over server-sent events.
// The server renders and escapes each row; this only puts it at the top of the table.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live || live.dataset.live !== "true" || !window.EventSource) return;
  const body = document.querySelector("#history tbody");
  const url = live.dataset.events + (live.dataset.events.includes("?") ? "&" : "?") + "after=" + live.dataset.after;
  const events = new EventSource(url);
  events.onmessage = function (e) {
    const t = document.createElement("template");
    t.innerHTML = e.data;
    const row = t.content.firstElementChild;
    if (!row) return;
    row.classList.add("fresh");
    body.prepend(row);
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
  };
})();
// A destructive button asks first (no inline handlers: the page's CSP forbids them).
document.addEventListener("submit", function (e) {
  const b = e.submitter;
  if (b && b.classList.contains("danger") && !window.confirm(b.textContent + "?")) e.preventDefault();
});

// pps web UI: Activity and Logs follow new lines over server-sent events. The server
// renders and escapes each row; this only puts it into the table (newest first on
// Activity, appended on Logs). EventSource reconnects by itself after a reload of the
// service and sends the id of the last line it saw.
"use strict";
// Times come as UTC <time> elements; show them in the browser's own time zone.
function localTimes(root) {
  root.querySelectorAll("time[datetime]").forEach(function (t) {
    const d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) { t.title = t.textContent; t.textContent = d.toLocaleString(document.documentElement.lang || undefined); }
  });
}
localTimes(document);
(function () {
  const live = document.getElementById("live");
  if (!live || live.dataset.live !== "true" || !window.EventSource) return;
  const body = document.querySelector("#" + (live.dataset.table || "history") + " tbody");
  const append = live.dataset.order === "append";
  const url = live.dataset.events + (live.dataset.events.includes("?") ? "&" : "?") + "after=" + live.dataset.after;
  const events = new EventSource(url);
  events.onmessage = function (e) {
    const t = document.createElement("template");
    t.innerHTML = e.data;
    const row = t.content.firstElementChild;
    if (!row) return;
    row.classList.add("fresh");
    localTimes(row);
    if (append) {
      body.append(row);
      while (body.rows.length > 2000) body.deleteRow(0);
    } else {
      body.prepend(row);
      while (body.rows.length > 2000) body.deleteRow(-1);
    }
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
  };
})();
// A destructive button asks first, naming what it acts on (its data-confirm); no
// inline handlers: the page's CSP forbids them.
document.addEventListener("submit", function (e) {
  const b = e.submitter;
  if (b && b.classList.contains("danger") && !window.confirm(b.dataset.confirm || b.textContent + "?")) e.preventDefault();
});
// A page with work in progress (a re-index) looks again every few seconds.
(function () {
  const r = document.querySelector("[data-refresh]");
  if (r) setTimeout(function () { window.location.reload(); }, 1000 * Number(r.dataset.refresh || 2));
})();

// Live updates of the Sluice UI, from server-sent events. Every page works without this
// script; it only keeps a running run's states and a running task's output current.
"use strict";

function setState(container, state) {
  if (!container) return;
  const badge = container.querySelector(".state");
  if (badge) {
    badge.textContent = state;
    badge.className = "state state-" + state;
  }
}

function followRun(url) {
  const events = new EventSource(url);
  events.addEventListener("task", (e) => {
    const { task, state } = JSON.parse(e.data);
    for (const row of document.querySelectorAll("tr[data-task]")) {
      if (row.dataset.task === task) setState(row.querySelector(".task-state"), state);
    }
  });
  events.addEventListener("node", (e) => {
    const { node, state } = JSON.parse(e.data);
    const g = document.getElementById("node-" + node);
    if (g) g.setAttribute("class", "node node-state-" + state);
  });
  events.addEventListener("end", (e) => {
    events.close();
    const { state } = JSON.parse(e.data || "{}");
    if (state) setState(document.getElementById("run-state"), state);
    // Durations, timings and the deploy outcome are final now: show them.
    window.setTimeout(() => window.location.reload(), 500);
  });
}

function followLog(url) {
  const out = document.getElementById("live-log");
  const events = new EventSource(url);
  events.addEventListener("line", (e) => {
    const { stream, line } = JSON.parse(e.data);
    if (!out) return;
    const text = document.createTextNode((stream === "stderr" ? "! " : "") + line + "\n");
    out.appendChild(text);
    out.scrollTop = out.scrollHeight;
  });
  events.addEventListener("end", () => {
    events.close();
    window.setTimeout(() => window.location.reload(), 500);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const run = document.querySelector("[data-events]");
  if (run) followRun(run.dataset.events);
  const log = document.querySelector("[data-log]");
  if (log) followLog(log.dataset.log);
});

// The Caxton console's live updates: no framework, no build step, nothing fetched from elsewhere.
// The pages are complete without this script. With it, every element marked data-live is replaced
// by its new markup (drawn by the engine, charts included) whenever the engine's event stream
// (body[data-stream], server-sent events) says something happened; on an engine without a stream,
// every body[data-poll-ms] milliseconds instead.
"use strict";
(function () {
  const body = document.body;
  const regions = () => Array.from(document.querySelectorAll("[data-live][id]"));
  if (!regions().length) return;
  const state = document.getElementById("live-state");
  let pending = null;
  let busy = false;
  let again = false;

  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (response.redirected || !response.ok) { if (state) state.textContent = "paused: reload the page"; return; }
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const old of regions()) {
        const next = fresh.getElementById(old.id);
        if (next && next.innerHTML !== old.innerHTML) {
          const focused = document.activeElement && old.contains(document.activeElement) ? document.activeElement.id : null;
          old.replaceWith(next);
          if (focused) { const again = document.getElementById(focused); if (again) again.focus(); }
        }
      }
      body.dataset.updated = String(Date.now());
      if (state) state.textContent = "live, updated " + new Date().toLocaleTimeString();
    } catch (error) {
      if (state) state.textContent = "engine unreachable: retrying";
    } finally {
      busy = false;
      if (again) { again = false; soon(); }
    }
  }

  function soon() {
    if (pending !== null) return;
    pending = window.setTimeout(function () { pending = null; refresh(); }, 50);
  }

  const stream = body.dataset.stream;
  if (stream && "EventSource" in window) {
    const source = new EventSource(stream);
    source.onmessage = soon;
    for (const name of ["event", "rollout", "apply"]) source.addEventListener(name, soon);
    // Whatever happened between the page's rendering and the stream's opening is read once now.
    source.onopen = function () { if (state) state.textContent = "live"; soon(); };
    source.onerror = function () { if (state) state.textContent = "reconnecting"; };
    window.addEventListener("pagehide", function () { source.close(); });
  } else {
    const every = Number(body.dataset.pollMs) || 2000;
    window.setInterval(function () { if (!document.hidden) refresh(); }, every);
  }
})();

// Cairn dashboard: live updates and actions. Plain JavaScript, no build step.
//
// Pages are rendered (and escaped) by the server; this script only swaps in
// HTML the server rendered, or sets text with textContent. Actions call the JSON
// API and show its own error messages. No polling: the requests page follows one
// event stream (/ui/stream), the request page its request's progress stream, and
// asks the server for what changed (/view) at most once a second.
"use strict";

(function () {
  const body = document.body;
  const API = body.dataset.api;

  // -- helpers -----------------------------------------------------------------

  // An expired session: to the login page, then back here.
  function toLogin() {
    const here = location.pathname + location.search + location.hash;
    window.location.assign("/ui/login?next=" + encodeURIComponent(here));
  }

  function loggedOut(response) {
    const redirected = response.redirected && new URL(response.url).pathname === "/ui/login";
    if (redirected || response.status === 401) { toLogin(); return true; }
    return false;
  }

  async function callApi(method, path, init) {
    const response = await fetch(path, Object.assign({ method: method, credentials: "same-origin" }, init || {}));
    if (loggedOut(response)) throw new Error("Your session expired: log in again.");
    let data = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("application/json")) data = await response.json();
    if (!response.ok) {
      const message = data && data.error && data.error.message;
      throw new Error(message || response.status + " " + response.statusText);
    }
    return data;
  }

  // Rows rendered by the server, as elements (a <template> parses <tr> alone).
  function elementsOf(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return Array.from(template.content.children);
  }

  function show(element, text, kind) {
    if (!element) return;
    element.textContent = text;
    element.className = element.className.replace(/\b(ok|bad)\b/g, "").trim() + (kind ? " " + kind : "");
    element.hidden = !text;
  }

  function setProgress(container, data) {
    if (!container) return;
    const bar = container.querySelector(".progress");
    if (!bar) {
      container.innerHTML = "<div class=\"progress\" role=\"progressbar\" aria-label=\"Progress\" aria-valuemin=\"0\" aria-valuemax=\"100\"><div class=\"fill\"></div></div>" +
        "<div class=\"progress-text\"><span class=\"counts\"></span> <span class=\"message\"></span></div>";
      return setProgress(container, data);
    }
    const known = data.percent !== null && data.percent !== undefined;
    bar.classList.toggle("indeterminate", !known);
    if (known) bar.setAttribute("aria-valuenow", String(data.percent));
    else bar.removeAttribute("aria-valuenow");
    bar.querySelector(".fill").style.width = (known ? data.percent : 100) + "%";
    container.querySelector(".counts").textContent = data.counts;
    container.querySelector(".message").textContent = data.message;
  }

  // As the server formats durations (cairn._text.duration).
  function formatDuration(seconds) {
    if (seconds < 0.001) return (seconds * 1000).toFixed(2) + "ms";
    if (seconds < 1) return Math.round(seconds * 1000) + "ms";
    if (seconds < 60) return seconds.toFixed(2) + "s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + "m" + String(Math.floor(seconds % 60)).padStart(2, "0") + "s";
    return Math.floor(minutes / 60) + "h" + String(minutes % 60).padStart(2, "0") + "m";
  }

  // Durations of what is still running tick here, without asking the server.
  function tickDurations(root) {
    root.querySelectorAll("[data-started-ms]").forEach(function (element) {
      const cell = element.classList.contains("duration") || element.id === "request-duration" ? element : element.querySelector(".duration");
      if (cell) cell.textContent = formatDuration(Math.max(0, Date.now() - Number(element.dataset.startedMs)) / 1000);
    });
  }

  // -- times: in UTC (as served), local or relative; exact on hover -------------------

  const TIME_KEY = "cairn-times";

  function timeMode() {
    try { return localStorage.getItem(TIME_KEY) || "utc"; } catch (e) { return "utc"; }
  }

  function pad(n, width) { return String(n).padStart(width || 2, "0"); }

  function utcText(ms, precise) {
    const d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) +
      (precise ? "." + pad(d.getUTCMilliseconds(), 3) : "") + " UTC";
  }

  function zoneName(ms) {
    const parts = new Intl.DateTimeFormat("en", { timeZoneName: "short" }).formatToParts(new Date(ms));
    const zone = parts.find(function (p) { return p.type === "timeZoneName"; });
    return zone ? zone.value : "local";
  }

  function localText(ms, precise) {
    const d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
      (precise ? "." + pad(d.getMilliseconds(), 3) : "") + " " + zoneName(ms);
  }

  function relativeText(ms) {
    const seconds = Math.round((Date.now() - ms) / 1000);
    const ahead = seconds < 0;
    const s = Math.abs(seconds);
    let text;
    if (s < 5) return "just now";
    if (s < 60) text = s + " s";
    else if (s < 3600) text = Math.floor(s / 60) + " min";
    else if (s < 86400) text = Math.floor(s / 3600) + " h " + pad(Math.floor(s % 3600 / 60)) + " min";
    else text = Math.floor(s / 86400) + " d";
    return ahead ? "in " + text : text + " ago";
  }

  // A time as the reader picked; titles and bars always give it exactly.
  function formatTime(ms, precise) {
    const mode = timeMode();
    if (mode === "relative") return relativeText(ms);
    return mode === "local" ? localText(ms, precise) : utcText(ms, precise);
  }

  function exactTime(ms) {
    return timeMode() === "local" ? localText(ms, true) + " (" + utcText(ms, true) + ")"
      : utcText(ms, true) + " (" + localText(ms, true) + ")";
  }

  function applyTimes(root) {
    root.querySelectorAll("time[data-ms]").forEach(function (element) {
      const ms = Number(element.dataset.ms);
      element.textContent = formatTime(ms, element.dataset.precise === "1");
      element.title = exactTime(ms);
    });
    // A bar's hover: its attempt, run, start and end, and how long it took.
    const clock = timeMode() === "local" ? localText : utcText;
    root.querySelectorAll(".seg[data-start]").forEach(function (seg) {
      const start = Number(seg.dataset.start);
      const end = seg.dataset.end === "" ? null : Number(seg.dataset.end);
      seg.title = seg.dataset.label + " · " + clock(start, true) + " → " +
        (end === null ? "now (running)" : clock(end, true) + " (" + formatDuration((end - start) / 1000) + ")");
    });
  }

  function initTimes() {
    const select = document.getElementById("time-mode");
    if (select) {
      select.value = timeMode();
      select.addEventListener("change", function () {
        try { localStorage.setItem(TIME_KEY, select.value); } catch (e) { /* private mode */ }
        applyTimes(document.body);
      });
    }
    applyTimes(document.body);
    setInterval(function () { if (timeMode() === "relative") applyTimes(document.body); }, 5000);
  }

  // A stream refused (an expired session sends the login page instead): find
  // out, and go to the login page if so.
  async function checkSession() {
    try {
      const response = await fetch(location.pathname + location.search, { credentials: "same-origin" });
      loggedOut(response);
    } catch (e) { /* offline: the stream retries */ }
  }

  // -- copy buttons ----------------------------------------------------------------

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const text = button.dataset.copy;
    try {
      await navigator.clipboard.writeText(text);
      flash(button, "Copied");
    } catch (failure) {
      flash(button, "Copy failed: select the text");
    }
  });

  function flash(button, text) {
    const before = button.getAttribute("title") || "";
    button.setAttribute("title", text);
    button.classList.add("done");
    const note = document.getElementById("live-note");
    if (note) note.textContent = text;
    setTimeout(function () { button.setAttribute("title", before); button.classList.remove("done"); }, 1500);
  }

  // -- values: a collapsible JSON tree, copy, show all ------------------------------

  const OPEN_DEPTH = 2; // levels open at first
  const CHILDREN = 500; // children shown before "show the rest"

  function span(text, className) {
    const element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  }

  function jsonNode(key, value, depth) {
    const isObject = value !== null && typeof value === "object";
    const label = key === null ? null : span(key + ": ", "jv-key");
    if (!isObject) {
      const leaf = document.createElement("div");
      leaf.className = "jv-leaf";
      if (label) leaf.appendChild(label);
      const kind = value === null ? "null" : typeof value;
      leaf.appendChild(span(JSON.stringify(value), "jv-" + kind));
      return leaf;
    }
    const entries = Array.isArray(value) ? value.map(function (v, i) { return [String(i), v]; }) : Object.entries(value);
    const details = document.createElement("details");
    details.className = "jv-node";
    const summary = document.createElement("summary");
    if (label) summary.appendChild(label);
    const count = entries.length;
    summary.appendChild(span(Array.isArray(value) ? "[" + count + " item" + (count === 1 ? "" : "s") + "]"
      : "{" + count + " key" + (count === 1 ? "" : "s") + "}", "jv-count"));
    details.appendChild(summary);
    let shown = 0;
    const list = document.createElement("div");
    list.className = "jv-children";
    function more() {
      const end = Math.min(shown + CHILDREN, count);
      for (; shown < end; shown += 1) list.appendChild(jsonNode(entries[shown][0], entries[shown][1], depth + 1));
      if (shown < count) {
        const rest = document.createElement("button");
        rest.type = "button";
        rest.className = "link small";
        rest.textContent = "Show " + Math.min(CHILDREN, count - shown) + " more · " +
          (count - shown).toLocaleString("en") + " not shown";
        rest.addEventListener("click", function () { rest.remove(); more(); });
        list.appendChild(rest);
      }
    }
    details.addEventListener("toggle", function () {
      if (details.open && !list.parentNode) { more(); details.appendChild(list); }
    });
    if (depth < OPEN_DEPTH) details.open = true;
    return details;
  }

  // The JSON tree of a value's text (objects and arrays only; the text stays
  // one click away).
  function viewJson(pre, value) {
    const box = pre.closest(".value");
    const old = box.querySelector(".jv");
    if (old) old.remove();
    if (value === null || typeof value !== "object") { pre.hidden = false; return; }
    const tree = document.createElement("div");
    tree.className = "jv";
    tree.appendChild(jsonNode(null, value, 0));
    pre.before(tree);
    pre.hidden = true;
    const tools = box.querySelector(".value-tools");
    if (!tools.querySelector("[data-json-text]")) {
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "btn tiny";
      toggle.dataset.jsonText = "";
      toggle.textContent = "Text";
      tools.prepend(toggle);
    }
  }

  function enhance(root) {
    root.querySelectorAll("pre[data-json]:not([data-cut]):not([data-viewed])").forEach(function (pre) {
      pre.dataset.viewed = "1";
      let value;
      try { value = JSON.parse(pre.textContent); } catch (e) { return; }
      viewJson(pre, value);
    });
  }

  const WHOLE_LIMIT = 20 << 20; // bytes a browser is asked to show at most

  document.addEventListener("click", async function (event) {
    const target = event.target.closest("[data-copy-value], [data-json-text], [data-show-all]");
    if (!target) return;
    const box = target.closest(".value");
    const pre = box.querySelector("pre, .opaque");
    if (target.hasAttribute("data-copy-value")) {
      try {
        await navigator.clipboard.writeText(pre.textContent);
        flash(target, "Copied");
      } catch (failure) {
        flash(target, "Copy failed: select the text");
      }
    } else if (target.hasAttribute("data-json-text")) {
      const tree = box.querySelector(".jv");
      const showText = !tree.hidden;
      tree.hidden = showText;
      pre.hidden = !showText;
      target.textContent = showText ? "Tree" : "Text";
    } else {
      target.disabled = true;
      try {
        const response = await fetch(target.dataset.showAll, { credentials: "same-origin" });
        if (loggedOut(response)) return;
        const size = Number(response.headers.get("content-length") || 0);
        if (!response.ok) throw new Error(response.status + " " + response.statusText);
        if (size > WHOLE_LIMIT) throw new Error("Too large for the browser (" + size.toLocaleString("en") + " bytes): download it.");
        const value = await response.json();
        pre.textContent = JSON.stringify(value, null, 2);
        delete pre.dataset.cut;
        pre.dataset.viewed = "1";
        viewJson(pre, value);
        const cut = box.querySelector(".cut");
        if (cut) cut.remove();
        target.remove();
      } catch (failure) {
        target.disabled = false;
        const cut = box.querySelector(".cut");
        if (cut) cut.textContent = failure.message;
      }
    }
  });

  // -- a confirmation dialog ---------------------------------------------------------

  // Resolves true when the user confirms. The text says what will happen.
  function confirmAction(title, lines, action) {
    return new Promise(function (resolve) {
      const dialog = document.createElement("dialog");
      dialog.className = "confirm";
      dialog.setAttribute("aria-labelledby", "confirm-title");
      const heading = document.createElement("h2");
      heading.id = "confirm-title";
      heading.textContent = title;
      dialog.appendChild(heading);
      lines.forEach(function (line) {
        const p = document.createElement("p");
        p.textContent = line;
        dialog.appendChild(p);
      });
      const buttons = document.createElement("form");
      buttons.method = "dialog";
      buttons.className = "confirm-buttons";
      const keep = document.createElement("button");
      keep.className = "btn"; keep.value = "no"; keep.textContent = action ? "Keep it" : "OK";
      const go = document.createElement("button");
      go.className = "btn primary"; go.value = "yes"; go.textContent = action;
      buttons.append(keep);
      if (action) buttons.append(go);
      dialog.appendChild(buttons);
      document.body.appendChild(dialog);
      dialog.addEventListener("close", function () {
        resolve(dialog.returnValue === "yes");
        dialog.remove();
      });
      dialog.showModal();
      (action ? go : keep).focus();
    });
  }

  // -- requests page -------------------------------------------------------------

  function initRequests() {
    const table = document.getElementById("requests");
    const tbody = table.querySelector("tbody");
    const filters = document.getElementById("filters");
    // A choice made with the mouse (or touch) applies at once; with the keyboard,
    // arrow keys only choose (a closed list changes on each) and Enter applies.
    filters.querySelectorAll("select").forEach(function (select) {
      let keyboard = false;
      select.addEventListener("keydown", function (event) {
        keyboard = true;
        if (event.key === "Enter") { event.preventDefault(); filters.requestSubmit(); }
      });
      select.addEventListener("pointerdown", function () { keyboard = false; });
      select.addEventListener("change", function () { if (!keyboard) filters.requestSubmit(); });
    });

    function upsert(data) {
      const [row] = elementsOf(data.html);
      const existing = document.getElementById("r-" + data.id);
      if (existing) existing.replaceWith(row);
      else if (data.new) {
        const empty = tbody.querySelector("tr.empty");
        if (empty) empty.remove();
        tbody.prepend(row);
      }
      applyTimes(row);
    }

    if (table.dataset.live === "1") {
      const watch = Array.from(tbody.querySelectorAll("tr[data-status]"))
        .filter(function (tr) { return tr.dataset.status === "running" || tr.dataset.status === "pending"; })
        .map(function (tr) { return tr.dataset.id; });
      const query = new URLSearchParams({
        watch: watch.join(","),
        since: table.dataset.since,
        application: table.dataset.application,
        status: table.dataset.status,
      });
      const source = new EventSource("/ui/stream?" + query.toString());
      const state = document.getElementById("live-state");
      source.onopen = function () { state.hidden = false; };
      source.onerror = function () {
        state.hidden = true;
        if (source.readyState === EventSource.CLOSED) checkSession();
      };
      source.addEventListener("row", function (event) { upsert(JSON.parse(event.data)); });
      source.addEventListener("progress", function (event) {
        const data = JSON.parse(event.data);
        const row = document.getElementById("r-" + data.id);
        if (row) setProgress(row.querySelector(".progress-cell"), data);
      });
      window.addEventListener("pagehide", function () { source.close(); });
    }

    setInterval(function () { tickDurations(tbody); }, 1000);
    initInvoke();
    initBulk();
  }

  // Bulk replay or cancel of what the filter finds: confirmed, then done a page
  // of requests per call, its progress shown.
  function initBulk() {
    const box = document.getElementById("bulk");
    if (!box) return;
    const state = document.getElementById("bulk-state");
    box.addEventListener("click", async function (event) {
      const button = event.target.closest("[data-bulk]");
      if (!button) return;
      const action = button.dataset.bulk;
      const count = Number(button.dataset.count);
      const max = Number(box.dataset.max);
      const what = box.dataset.describe;
      const n = count.toLocaleString("en");
      if (count > max) {
        await confirmAction("Too many requests", ["This filter finds " + n + " " +
          (action === "replay" ? "finished" : "unfinished") + " requests (" + what + "); a bulk action " +
          "takes at most " + max.toLocaleString("en") + ". Narrow it: an application, a status, a time range."], null);
        return;
      }
      const replay = action === "replay";
      const lines = replay ? [
        "Replay " + n + " finished request" + (count === 1 ? "" : "s") + " (" + what + ")?",
        "Each runs again from the top with the code this server loaded: in each, the calls " +
          "that did not succeed run again, their side effects included; those that " +
          "succeeded are served from their checkpoints.",
        "Requests created after this page was loaded are left alone."]
        : ["Cancel " + n + " unfinished request" + (count === 1 ? "" : "s") + " (" + what + ")?",
          "Their running calls are stopped and nothing more runs for them; calls that " +
          "finished keep their checkpoints, so a replay can take them up later."];
      const title = replay ? "Replay " + n + " requests?" : "Cancel " + n + " requests?";
      if (!await confirmAction(title, lines, replay ? "Replay " + n : "Cancel " + n)) return;
      box.querySelectorAll("[data-bulk]").forEach(function (b) { b.disabled = true; });
      let after = null, done = 0, total = count;
      const skipped = [];
      try {
        for (;;) {
          const answer = await callApi("POST", "/ui/bulk", {
            body: JSON.stringify({ action: action, query: location.search, as_of_ms: Number(box.dataset.asOf), after: after }),
            headers: { "Content-Type": "application/json" },
          });
          if (answer.total !== null) total = answer.total;
          done += answer.done;
          skipped.push.apply(skipped, answer.skipped);
          show(state, (replay ? "Replaying: " : "Cancelling: ") + done.toLocaleString("en") + " of " +
            total.toLocaleString("en") + "…");
          if (!answer.after) break;
          after = answer.after;
        }
        show(state, (replay ? "Replayed " : "Cancelled ") + done.toLocaleString("en") + " of " +
          total.toLocaleString("en") + " requests" + (skipped.length ? "; " + skipped.length +
          " skipped (" + skipped[0].id + ": " + skipped[0].reason + ")" : "") + ".", "ok");
      } catch (failure) {
        show(state, failure.message, "bad");
      }
    });
  }

  function initInvoke() {
    const form = document.getElementById("invoke-form");
    if (!form) return;
    const select = document.getElementById("invoke-app");
    const error = document.getElementById("invoke-error");
    const ok = document.getElementById("invoke-ok");

    function choose(name) {
      select.value = name;
      form.querySelectorAll("fieldset.params").forEach(function (fieldset) {
        fieldset.hidden = fieldset.dataset.app !== name;
      });
      show(error, "");
    }
    select.addEventListener("change", function () { choose(select.value); });
    document.querySelectorAll("[data-invoke]").forEach(function (button) {
      button.addEventListener("click", function () {
        choose(button.dataset.invoke);
        const first = form.querySelector("fieldset.params:not([hidden]) textarea");
        (first || select).focus();
      });
    });

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      show(error, "");
      show(ok, "");
      const name = select.value;
      const fieldset = form.querySelector("fieldset.params[data-app=\"" + CSS.escape(name) + "\"]");
      // One multipart part per filled-in parameter, its JSON sent as typed: the
      // server validates it and names what is wrong.
      const parts = new FormData();
      let count = 0;
      fieldset.querySelectorAll("textarea").forEach(function (area) {
        if (area.value.trim() === "") return;
        parts.append(area.name, new Blob([area.value], { type: "application/json" }), area.name);
        count += 1;
      });
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const init = count ? { body: parts } : { body: "", headers: { "Content-Type": "application/json" } };
        init.headers = Object.assign({ "Accept": "application/json" }, init.headers || {});
        const data = await callApi("POST", API + "/applications/" + encodeURIComponent(name), init);
        ok.hidden = false;
        ok.textContent = "Started ";
        const link = document.createElement("a");
        link.href = "/ui/requests/" + encodeURIComponent(data.request_id);
        link.textContent = data.request_id;
        ok.appendChild(link);
      } catch (failure) {
        show(error, failure.message, "bad");
      } finally {
        button.disabled = false;
      }
    });
  }

  // -- the timeline ------------------------------------------------------------------

  // Every run side by side, as the server lays them out (_timeline.py): each run
  // a lane as wide as its share of the time, never narrower than a tenth.
  const GAP = 1.0, MIN_LANE = 10.0, MIN_WIDTH = 0.4;

  function lanesOf(runs, now) {
    const count = runs.length;
    if (!count) return [];
    const usable = 100 - GAP * (count - 1);
    const floor = count === 1 ? usable : Math.min(MIN_LANE, usable / count / 2);
    const ends = runs.map(function (r) { return Math.max(r.end === null ? now : r.end, r.start); });
    const lengths = runs.map(function (r, i) { return Math.max(ends[i] - r.start, 1); });
    const total = lengths.reduce(function (a, b) { return a + b; }, 0);
    let left = 0;
    return runs.map(function (r, i) {
      const width = floor + (usable - floor * count) * lengths[i] / total;
      const lane = { run: r.run, start: r.start, end: ends[i], left: left, width: width };
      left += width + GAP;
      return lane;
    });
  }

  function place(lanes, start, end, run) {
    let lane = lanes.find(function (l) { return l.run === run; });
    if (!lane) lane = lanes.filter(function (l) { return l.start <= start; }).pop() || lanes[0];
    if (!lane) return [0, MIN_WIDTH];
    const span = Math.max(lane.end - lane.start, 1);
    const x = function (t) { return lane.left + Math.min(Math.max((t - lane.start) / span, 0), 1) * lane.width; };
    const left = x(start), right = x(end);
    const width = Math.max(right - left, MIN_WIDTH);
    return [Math.min(left, 100 - width), width];
  }

  function layout(root, timeline) {
    const now = Date.now();
    const lanes = lanesOf(timeline.runs, now);
    root.querySelectorAll(".seg[data-start]").forEach(function (seg) {
      const end = seg.dataset.end === "" ? now : Number(seg.dataset.end);
      const [left, width] = place(lanes, Number(seg.dataset.start), end, Number(seg.dataset.run));
      seg.style.left = left.toFixed(3) + "%";
      seg.style.width = width.toFixed(3) + "%";
    });
    root.querySelectorAll(".lane-label").forEach(function (label) {
      const lane = lanes.find(function (l) { return l.run === Number(label.dataset.run); });
      if (!lane) return;
      label.style.left = lane.left.toFixed(3) + "%";
      label.style.width = lane.width.toFixed(3) + "%";
      label.querySelector(".lane-duration").textContent = formatDuration((lane.end - lane.start) / 1000);
    });
  }

  // -- request page --------------------------------------------------------------

  function initRequest() {
    const main = document.getElementById("request-main");
    const message = document.getElementById("action-message");
    const requestId = main.dataset.id;
    const base = "/ui/requests/" + encodeURIComponent(requestId);
    const apiBase = API + "/applications/" + encodeURIComponent(main.dataset.application) +
      "/requests/" + encodeURIComponent(requestId);
    // What the page shows: the server renders exactly this (see _tree.ViewState).
    const state = { view: "tree", shown: 100, groups: new Map(), parents: new Map(), details: [], log: "" };
    const folded = new Set(); // paths of rows folded here (their subtrees hidden)
    let token = main.dataset.token;
    let version = Number(main.dataset.version);
    let seq = Number(main.dataset.seq);
    let timeline = JSON.parse(main.dataset.timeline);
    let source = null;
    let inFlight = null; // the update being fetched
    let again = false; // another update is wanted after it
    let lastLive = Date.now(); // when the last live update was asked (ms)
    let liveTimer = null;
    let received = []; // events waiting for the next live update: [performance.now(), created ms]
    let measured = 0; // live updates measured for the figures
    let awaited = null; // the run whose end an action's message waits to report

    function head() { return document.getElementById("request-head"); }
    function rows() { return document.getElementById("tree-rows"); }
    function finished() { return head().dataset.finished === "1"; }

    function query() {
      const q = new URLSearchParams({ token: token, have: String(version) });
      if (state.view !== "tree") { q.set("view", state.view); q.set("n", String(state.shown)); }
      state.groups.forEach(function (g, id) { q.append("g", g.mode + "." + g.n + "." + id); });
      state.parents.forEach(function (n, id) { q.append("p", n + "." + id); });
      state.details.forEach(function (id) { q.append("d", id); });
      if (state.log) q.set("log", state.log);
      return q;
    }

    // One update at a time; one asked for meanwhile runs after it (a fetch made
    // after it was asked, never the older answer).
    function update() {
      if (inFlight) { again = true; return inFlight; }
      inFlight = fetchUpdate().finally(function () {
        inFlight = null;
        if (again) { again = false; update(); }
      });
      return inFlight;
    }

    // Live events ask for an update at most once a second, however many come.
    function liveUpdate() {
      if (liveTimer) return;
      const wait = Math.max(0, lastLive + 1000 - Date.now());
      liveTimer = setTimeout(function () {
        liveTimer = null;
        lastLive = Date.now();
        update();
      }, wait);
    }

    async function fetchUpdate() {
      const waiting = received;
      received = [];
      try {
        const response = await fetch(base + "/view?" + query().toString(), { credentials: "same-origin" });
        if (loggedOut(response)) return;
        const data = await response.json();
        if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
        apply(data);
        // For the figures of the browser tests: from the first event an update
        // waited for to the page showing it, and from the newest event's commit.
        if (waiting.length && measured < 1000) { // (a page open for days keeps no more)
          measured += 1;
          const created = Math.max.apply(null, waiting.map(function (e) { return e[1] || 0; }));
          performance.measure("cairn-live-update", {
            start: waiting[0][0], end: performance.now(),
            detail: { createdMs: created, appliedMs: Date.now(), events: waiting.length },
          });
        }
      } catch (failure) {
        show(message, failure.message, "bad");
        if (!finished()) setTimeout(liveUpdate, 2000); // the server went away: again
      }
    }

    function apply(data) {
      version = data.version;
      seq = Math.max(seq, data.seq);
      main.dataset.seq = String(seq);
      timeline = data.timeline;
      const ids = { head: "request-head", values: "request-values", log: "request-log", scale: "tree-scale" };
      Object.keys(data.parts).forEach(function (name) {
        const old = document.getElementById(ids[name]);
        const [fresh] = elementsOf(data.parts[name]);
        if (old && fresh) old.replaceWith(fresh);
      });
      reconcile(data.keys, data.rows);
      enhance(main);
      applyTimes(main);
      settle();
    }

    // The tree's rows in the order of `keys`: kept where unchanged, new HTML
    // where given; rows no longer listed go.
    function reconcile(keys, html) {
      const tbody = rows();
      const known = new Map();
      tbody.querySelectorAll(":scope > tr[data-key]").forEach(function (tr) { known.set(tr.dataset.key, tr); });
      let previous = null;
      keys.forEach(function (key) {
        let row = known.get(key);
        if (html[key] !== undefined) {
          const [fresh] = elementsOf(html[key]);
          if (row) row.replaceWith(fresh);
          row = fresh;
        }
        known.delete(key);
        if (!row) return;
        const expected = previous ? previous.nextElementSibling : tbody.firstElementChild;
        if (expected !== row) {
          if (previous) previous.after(row); else tbody.prepend(row);
        }
        previous = row;
      });
      known.forEach(function (tr) { tr.remove(); });
      if (!keys.length && !tbody.querySelector("tr.empty")) {
        tbody.innerHTML = "<tr class=\"empty\" data-key=\"~empty\"><td colspan=\"5\" class=\"muted\">No such calls.</td></tr>";
      }
      refold();
      layout(main, timeline);
    }

    // Folds made here stay folded across updates; opened calls say so.
    function refold() {
      const open = new Set(state.details);
      rows().querySelectorAll(":scope > tr[data-path]").forEach(function (tr) {
        const path = tr.dataset.path;
        let hidden = false;
        folded.forEach(function (prefix) { if (path.startsWith(prefix + "/")) hidden = true; });
        tr.classList.toggle("hidden", hidden);
        const toggle = tr.querySelector(":scope > td [data-toggle]");
        if (toggle && tr.classList.contains("call")) {
          const isOpen = !folded.has(path);
          toggle.setAttribute("aria-expanded", isOpen ? "true" : "false");
          toggle.textContent = isOpen ? "▾" : "▸";
        }
        if (toggle && tr.classList.contains("group")) {
          const isOpen = state.groups.has(tr.dataset.group) && !folded.has(path);
          toggle.setAttribute("aria-expanded", isOpen ? "true" : "false");
          toggle.textContent = isOpen ? "▾" : "▸";
        }
        const name = tr.querySelector("[data-details]");
        if (name) name.setAttribute("aria-expanded", open.has(name.dataset.details) ? "true" : "false");
      });
    }

    function follow() {
      if (source) return;
      source = new EventSource(apiBase + "/progress");
      source.onmessage = function (event) {
        const data = JSON.parse(event.data);
        const kind = Object.keys(data)[0];
        const payload = data[kind];
        if (kind === "RequestStreamChunk") {
          appendChunk(payload, Number(event.lastEventId));
          return;
        }
        // The stream starts from the run's first event; the page already shows
        // every event up to the one it was read at.
        if (event.lastEventId && Number(event.lastEventId) <= seq) return;
        if (kind === "RequestProgressUpdated") {
          setProgress(document.getElementById("request-progress"), progressOf(payload));
          appendLog(payload, Number(event.lastEventId));
          return;
        }
        received.push([performance.now(), Date.parse(payload.created_at)]);
        if (kind === "RequestFinished") stopFollowing(); // the stream ends here
        liveUpdate();
      };
      source.onerror = function () {
        // A stream refused (an expired session) is closed: an update finds out.
        if (source && source.readyState === EventSource.CLOSED) { source = null; update(); }
      };
    }

    // Streamed output (ctx.stream.write): the pane holds every chunk up to its
    // data-seq (rendered with the page); later ones come on the progress stream.
    const streamPane = document.getElementById("stream-pane");
    let streamRun = null;
    function appendChunk(chunk, chunkSeq) {
      if (!streamPane || chunkSeq <= Number(streamPane.dataset.seq)) return;
      const text = document.getElementById("stream-text");
      const atEnd = text.scrollTop + text.clientHeight >= text.scrollHeight - 4;
      if (streamRun === null) streamRun = Number(streamPane.dataset.run || chunk.run);
      let piece = "text" in chunk ? chunk.text
        : "json" in chunk ? JSON.stringify(chunk.json) + "\n"
        : "[" + atob(chunk.bytes_base64).length + " bytes]\n";
      if (Number(streamPane.dataset.count) > 0 && chunk.run !== streamRun) {
        piece = "\n── run " + chunk.run + " ──\n" + piece;
      }
      streamRun = chunk.run;
      text.append(document.createTextNode(piece));
      streamPane.dataset.seq = String(chunkSeq);
      const count = Number(streamPane.dataset.count) + 1;
      streamPane.dataset.count = String(count);
      document.getElementById("stream-state").textContent = count + (count === 1 ? " chunk" : " chunks");
      streamPane.hidden = false;
      if (atEnd) text.scrollTop = text.scrollHeight;
    }

    function stopFollowing() {
      if (source) { source.close(); source = null; }
    }

    // After every update: an action's message ("Replaying…") says how the run
    // it started ended, once the page shows that run (or a later one) finished;
    // a run still going is followed.
    function settle() {
      const data = head().dataset;
      if (data.finished !== "1") { follow(); return; }
      stopFollowing();
      if (awaited !== null && Number(data.run) >= awaited) {
        awaited = null;
        show(message, "Run " + data.run + " " + data.status + ".", data.status === "succeeded" ? "ok" : "bad");
      }
    }

    function progressOf(payload) {
      const step = payload.step, total = payload.total;
      const known = typeof total === "number" && total > 0;
      const text = function (n) { return Number.isInteger(n) ? String(n) : String(Number(Number(n).toPrecision(6))); };
      return {
        percent: known ? Math.min(100, Math.max(0, Math.round(step / total * 1000) / 10)) : null,
        counts: known ? text(step) + " / " + text(total) : text(step),
        message: payload.message || "",
      };
    }

    // A progress message joins the log when the log shows the newest page.
    function appendLog(payload, eventSeq) {
      const log = document.getElementById("request-log");
      if (!log || log.dataset.before !== "") return;
      const tbody = log.querySelector("tbody");
      if (!tbody) { liveUpdate(); return; }
      const tr = document.createElement("tr");
      tr.dataset.seq = String(eventSeq);
      const at = Date.parse(payload.created_at);
      const cells = [["", "Time", "nowrap muted"], [head().dataset.run, "Run", "num"],
        [payload.function_name || "", "Function", "mono"], [progressOf(payload).counts, "Step", "num nowrap"],
        [payload.message || "", "Message", "message"]];
      cells.forEach(function (cell) {
        const td = document.createElement("td");
        td.textContent = cell[0];
        td.dataset.label = cell[1];
        td.className = cell[2];
        tr.appendChild(td);
      });
      const time = document.createElement("time");
      time.dataset.ms = String(at);
      time.dataset.precise = "1";
      time.dateTime = new Date(at).toISOString();
      tr.firstChild.appendChild(time);
      applyTimes(tr);
      tbody.appendChild(tr);
    }

    async function act(path, payload, done) {
      show(message, "");
      awaited = null;
      try {
        const answer = await callApi("POST", apiBase + path, {
          body: JSON.stringify(payload || {}),
          headers: { "Content-Type": "application/json" },
        });
        // A replay names the run it started; a cancel ends the one shown.
        awaited = answer && typeof answer.run === "number" ? answer.run : Number(head().dataset.run);
        show(message, done, "ok");
        await update();
      } catch (failure) {
        show(message, failure.message, "bad");
      }
    }

    async function replayPlan(fromCall) {
      const q = new URLSearchParams(fromCall ? { from_call: fromCall } : {});
      return callApi("GET", base + "/replay-plan?" + q.toString());
    }

    async function confirmReplay(fromCall, label) {
      const plan = await replayPlan(fromCall);
      const title = fromCall ? "Replay from " + label + "?" : "Replay this request?";
      return confirmAction(title, plan.lines, fromCall ? "Replay from " + label : "Replay");
    }

    function groupOf(row) { return row.dataset.group; }

    document.addEventListener("click", async function (event) {
      const target = event.target.closest("button, [data-action], a[data-call-link]");
      if (!target || !main.contains(target)) return;
      const row = target.closest("tr");
      try {
        if (target.dataset.action === "replay") {
          if (await confirmReplay(null, "")) await act("/replay", {}, "Replaying the request with the served code.");
        } else if (target.dataset.action === "cancel") {
          const lines = ["Cancelling stops request " + requestId + " of " + main.dataset.application +
            ": its running calls are stopped and nothing more runs for it.",
            "Calls that finished keep their checkpoints: a replay can take it up again later."];
          if (await confirmAction("Cancel this request?", lines, "Cancel the request")) await act("/cancel", {}, "Cancelled.");
        } else if (target.hasAttribute("data-replay-from")) {
          const label = target.dataset.label || target.dataset.replayFrom.slice(0, 12);
          if (await confirmReplay(target.dataset.replayFrom, label)) {
            await act("/replay", { from_call: target.dataset.replayFrom }, "Replaying from " + label + "…");
          }
        } else if (target.hasAttribute("data-toggle")) {
          const path = row.dataset.path;
          const group = groupOf(row);
          if (group && !state.groups.has(group)) {
            state.groups.set(group, { mode: "all", n: 100 });
            folded.delete(path);
            await update();
          } else if (folded.has(path)) {
            folded.delete(path); refold();
          } else {
            folded.add(path); refold();
          }
        } else if (target.hasAttribute("data-only-problems")) {
          state.groups.set(groupOf(row), { mode: "problems", n: 100 });
          folded.delete(row.dataset.path);
          await update();
        } else if (target.hasAttribute("data-details")) {
          const id = target.dataset.details;
          const at = state.details.indexOf(id);
          if (at >= 0) state.details.splice(at, 1); else state.details.push(id);
          await update();
        } else if (target.hasAttribute("data-more")) {
          const shown = Number(target.dataset.shown) + (target.dataset.group || state.view !== "tree" ? 100 : 300);
          if (target.dataset.group) state.groups.get(target.dataset.group).n = shown;
          else if (state.view !== "tree") state.shown = shown;
          else state.parents.set(target.dataset.parent, shown);
          await update();
        } else if (target.hasAttribute("data-log")) {
          state.log = target.dataset.log;
          await update();
        } else if (target.hasAttribute("data-call-link")) {
          event.preventDefault();
          history.replaceState(null, "", target.getAttribute("href"));
          await navigator.clipboard.writeText(location.href).catch(function () {});
        }
      } catch (failure) {
        show(message, failure.message, "bad");
      }
    });

    // Send a signal to the request (wait_for_signal): the value is JSON, as typed.
    document.addEventListener("submit", async function (event) {
      const form = event.target.closest("#signal-form");
      if (!form) return;
      event.preventDefault();
      const name = form.elements.signal.value.trim();
      const text = form.elements.value.value.trim() || "null";
      try {
        JSON.parse(text);
      } catch (failure) {
        show(message, "The value is not JSON: " + failure.message, "bad");
        return;
      }
      try {
        await callApi("POST", apiBase + "/signals/" + encodeURIComponent(name), {
          body: text,
          headers: { "Content-Type": "application/json" },
        });
        show(message, "Sent signal '" + name + "'.", "ok");
        await update();
      } catch (failure) {
        show(message, failure.message, "bad");
      }
    });

    document.getElementById("call-view").addEventListener("change", function (event) {
      state.view = event.target.value;
      state.shown = 100;
      update();
    });

    // A link to a call (#call=ID) opens it: in the tree if shown, else above it.
    async function openLinked() {
      const match = /^#call=(.+)$/.exec(location.hash);
      if (!match) return;
      const id = decodeURIComponent(match[1]);
      if (!state.details.includes(id)) state.details.push(id);
      await update();
      const opened = rows().querySelector("tr[data-details-for=\"" + CSS.escape(id) + "\"]");
      if (opened) opened.scrollIntoView({ block: "center" });
    }
    window.addEventListener("hashchange", openLinked);

    setInterval(function () {
      tickDurations(main);
      if (finished()) return;
      layout(main, timeline);
      // Calls start running without an event: a look now and then shows them.
      if (Date.now() - lastLive > 10000) liveUpdate();
    }, 1000);
    layout(main, timeline);
    enhance(main);
    if (!finished()) follow();
    openLinked();
    window.addEventListener("pagehide", stopFollowing);
  }

  initTimes();
  if (body.dataset.page === "requests") initRequests();
  if (body.dataset.page === "request") initRequest();
})();

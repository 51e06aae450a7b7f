// Cairn dashboard: live updates and actions. Plain JavaScript, no build step.
//
// Pages are rendered (and escaped) by the server; this script only swaps in
// HTML the server rendered, or sets text with textContent. Actions call the JSON
// API and show its own error messages. No polling: the requests page follows one
// event stream (/ui/stream), the request page its request's progress stream.
"use strict";

(function () {
  const body = document.body;
  const API = body.dataset.api;

  // -- helpers -----------------------------------------------------------------

  function toLogin(response) {
    if (response.redirected && new URL(response.url).pathname === "/ui/login") {
      window.location.assign("/ui/login?next=" + encodeURIComponent(location.pathname + location.search));
      return true;
    }
    return false;
  }

  async function callApi(method, path, init) {
    const response = await fetch(path, Object.assign({ method: method, credentials: "same-origin" }, init || {}));
    if (toLogin(response)) throw new Error("logged out");
    let data = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("application/json")) data = await response.json();
    if (!response.ok) {
      const message = data && data.error && data.error.message;
      throw new Error(message || response.status + " " + response.statusText);
    }
    return data;
  }

  async function fetchHtml(path) {
    const response = await fetch(path, { credentials: "same-origin" });
    if (toLogin(response)) throw new Error("logged out");
    const text = await response.text();
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = JSON.parse(text).error.message; } catch (e) { /* an HTML page */ }
      throw new Error(message);
    }
    return text;
  }

  // Rows rendered by the server, as elements (a <template> parses <tr> alone).
  function rowsOf(html) {
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
      container.innerHTML = "<div class=\"progress\" role=\"progressbar\" aria-valuemin=\"0\" aria-valuemax=\"100\"><div class=\"fill\"></div></div>" +
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
    if (seconds < 1) return Math.round(seconds * 1000) + "ms";
    if (seconds < 60) return seconds.toFixed(2) + "s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + "m" + String(Math.floor(seconds % 60)).padStart(2, "0") + "s";
    return Math.floor(minutes / 60) + "h" + String(minutes % 60).padStart(2, "0") + "m";
  }

  // -- requests page -------------------------------------------------------------

  function initRequests() {
    const table = document.getElementById("requests");
    const tbody = table.querySelector("tbody");
    const filters = document.getElementById("filters");
    filters.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { filters.submit(); });
    });

    function upsert(data) {
      const [row] = rowsOf(data.html);
      const existing = document.getElementById("r-" + data.id);
      if (existing) existing.replaceWith(row);
      else if (data.new) {
        const empty = tbody.querySelector("tr.empty");
        if (empty) empty.remove();
        tbody.prepend(row);
      }
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
      source.onerror = function () { state.hidden = true; };
      source.addEventListener("row", function (event) { upsert(JSON.parse(event.data)); });
      source.addEventListener("progress", function (event) {
        const data = JSON.parse(event.data);
        const row = document.getElementById("r-" + data.id);
        if (row) setProgress(row.querySelector(".progress-cell"), data);
      });
      window.addEventListener("pagehide", function () { source.close(); });
    }

    // Durations of running requests tick locally (no request to the server).
    setInterval(function () {
      tbody.querySelectorAll("tr[data-started-ms]").forEach(function (tr) {
        const cell = tr.querySelector(".duration");
        cell.textContent = formatDuration(Math.max(0, Date.now() - Number(tr.dataset.startedMs)) / 1000);
      });
    }, 1000);

    initInvoke();
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

  // -- request page --------------------------------------------------------------

  function initRequest() {
    const message = document.getElementById("action-message");
    const openGroups = new Map(); // group id -> "problems" | ""
    const openDetails = new Set();
    const moreLoaded = []; // "Show more" rows loaded, as their buttons' data
    const MORE_KEYS = ["parent", "group", "offset", "only"]; // what names a "Show more" row
    let source = null;
    let refreshing = null; // the page fetch in flight
    let queued = null; // the one that follows it
    let awaited = null; // the run whose end an action's message waits to report

    function main() { return document.getElementById("request-main"); }
    function info() {
      const data = main().dataset;
      return { id: data.id, app: data.application, finished: data.finished === "1" };
    }
    function base() { return "/ui/requests/" + encodeURIComponent(info().id); }
    function apiBase() {
      const current = info();
      return API + "/applications/" + encodeURIComponent(current.app) + "/requests/" + encodeURIComponent(current.id);
    }

    // Re-renders the page from the server. A caller gets a page fetched after it
    // asked: one asking while a fetch is in flight waits for the next one (which
    // all such callers share, a moment later, so a burst of events costs two
    // fetches), never for the older answer; else an action's message could
    // report the run it replaced.
    function refresh() {
      if (!refreshing) {
        refreshing = render().finally(function () { refreshing = null; });
        return refreshing;
      }
      if (!queued) {
        queued = refreshing
          .then(function () { return new Promise(function (resolve) { setTimeout(resolve, 400); }); })
          .then(function () { queued = null; return refresh(); });
      }
      return queued;
    }

    async function render() {
      try {
        const html = await fetchHtml(base() + "/main");
        const [fresh] = rowsOf(html);
        main().replaceWith(fresh);
        for (const [group, only] of Array.from(openGroups)) await openGroup(group, only);
        for (const more of moreLoaded.slice()) if (moreRow(more)) await loadMore(more);
        for (const call of Array.from(openDetails)) await openCall(call);
        settle();
      } catch (failure) {
        show(message, failure.message, "bad");
      }
    }

    function follow() {
      if (source) return;
      source = new EventSource(apiBase() + "/progress");
      source.onmessage = function (event) {
        // The stream starts from the run's first event; the page already shows
        // every event up to the one it was read at.
        if (event.lastEventId && Number(event.lastEventId) <= Number(main().dataset.seq)) return;
        const data = JSON.parse(event.data);
        const kind = Object.keys(data)[0];
        if (kind === "RequestProgressUpdated") {
          setProgress(document.getElementById("request-progress"), progressOf(data[kind]));
        } else {
          if (kind === "RequestFinished") stopFollowing(); // the stream ends here
          refresh();
        }
      };
    }

    // After every render, whatever asked for it: an action's message
    // ("Replaying…") says how the run it started ended, once the page shows that
    // run (or a later one) finished; a run still going is followed. Any render
    // may be the first to show the end (one an earlier event asked for can read
    // the run finished, and then no RequestFinished comes: its stream is closed).
    function settle() {
      const data = main().dataset;
      if (data.finished !== "1") { follow(); return; }
      stopFollowing();
      if (awaited !== null && Number(data.run) >= awaited) {
        awaited = null;
        show(message, "Run " + data.run + " " + data.status + ".", data.status === "succeeded" ? "ok" : "bad");
      }
    }

    function stopFollowing() {
      if (source) { source.close(); source = null; }
    }

    function progressOf(payload) {
      const step = payload.step, total = payload.total;
      const known = typeof total === "number" && total > 0;
      const text = function (n) { return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(6))); };
      return {
        percent: known ? Math.min(100, Math.max(0, Math.round(step / total * 1000) / 10)) : null,
        counts: known ? text(step) + " / " + text(total) : text(step),
        message: payload.message || "",
      };
    }

    async function act(path, payload, done) {
      show(message, "");
      awaited = null;
      try {
        const answer = await callApi("POST", apiBase() + path, {
          body: JSON.stringify(payload || {}),
          headers: { "Content-Type": "application/json" },
        });
        // A replay names the run it started; a cancel ends the one shown.
        awaited = answer && typeof answer.run === "number" ? answer.run : Number(main().dataset.run);
        show(message, done, "ok");
        await refresh();
      } catch (failure) {
        show(message, failure.message, "bad");
      }
    }

    // Rows below `row` in its subtree (its path is their prefix).
    function subtree(row) {
      const prefix = row.dataset.path + "/";
      const found = [];
      let next = row.nextElementSibling;
      while (next && next.dataset.path && next.dataset.path.startsWith(prefix)) {
        found.push(next);
        next = next.nextElementSibling;
      }
      return found;
    }

    function fold(row, open) {
      const toggle = row.querySelector("[data-toggle]");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      toggle.textContent = open ? "▾" : "▸";
      const closed = [];
      subtree(row).forEach(function (child) {
        const hidden = !open || closed.some(function (prefix) { return child.dataset.path.startsWith(prefix); });
        child.classList.toggle("hidden", hidden);
        const inner = child.querySelector("[data-toggle]");
        if (inner && inner.getAttribute("aria-expanded") === "false") closed.push(child.dataset.path + "/");
      });
    }

    function groupRow(group) {
      return main().querySelector("tr[data-group=\"" + CSS.escape(group) + "\"]");
    }

    // Loads a group's items under its row. The intent is kept first, and the row
    // looked up after the fetch: a live refresh may replace the page meanwhile,
    // and re-opens what is in openGroups.
    async function openGroup(group, only) {
      openGroups.set(group, only || "");
      const query = new URLSearchParams({ group: group, only: only || "" });
      const html = await fetchHtml(base() + "/rows?" + query.toString());
      const row = groupRow(group);
      if (!row) { openGroups.delete(group); return; }
      subtree(row).forEach(function (child) { child.remove(); });
      row.after.apply(row, rowsOf(html));
      row.dataset.loaded = only || "all";
      fold(row, true);
    }

    function moreRow(more) {
      const selector = MORE_KEYS.map(function (name) {
        return "[data-" + name + "=\"" + CSS.escape(more[name]) + "\"]";
      }).join("");
      const button = main().querySelector("button[data-more]" + selector);
      return button && button.closest("tr");
    }

    // Loads the rows a "Show more" row stands for in its place. The intent is kept
    // first, so that a live refresh (which re-renders the tree, maybe meanwhile)
    // loads them again; the row is looked up after the fetch.
    async function loadMore(more) {
      if (!moreLoaded.some(function (known) { return sameMore(known, more); })) moreLoaded.push(more);
      const query = new URLSearchParams({ offset: more.offset });
      if (more.group) { query.set("group", more.group); query.set("only", more.only); }
      else query.set("parent", more.parent);
      const html = await fetchHtml(base() + "/rows?" + query.toString());
      const row = moreRow(more);
      if (!row) return;
      row.replaceWith.apply(row, rowsOf(html));
    }

    // A group opened anew (all items, or only the problems) starts from its first page.
    function forgetMore(group) {
      for (let i = moreLoaded.length - 1; i >= 0; i -= 1) {
        if (moreLoaded[i].group === group) moreLoaded.splice(i, 1);
      }
    }

    function sameMore(a, b) {
      return MORE_KEYS.every(function (name) { return a[name] === b[name]; });
    }

    function moreOf(button) {
      const more = {};
      for (const name of MORE_KEYS) more[name] = button.dataset[name];
      return more;
    }

    function callRow(id) {
      return main().querySelector("tr.row.call[data-id=\"" + CSS.escape(id) + "\"]");
    }

    async function openCall(id) {
      openDetails.add(id);
      const html = await fetchHtml(base() + "/calls/" + encodeURIComponent(id));
      const row = callRow(id);
      if (!row) { openDetails.delete(id); return; }
      const old = main().querySelector("tr[data-details-for=\"" + CSS.escape(id) + "\"]");
      const [details] = rowsOf(html);
      if (old) old.replaceWith(details);
      else row.after(details);
    }

    document.addEventListener("click", async function (event) {
      const target = event.target.closest("button, [data-action]");
      if (!target || !main().contains(target)) return;
      const row = target.closest("tr");
      try {
        if (target.dataset.action === "replay") {
          await act("/replay", {}, "Replaying the request with the served code.");
        } else if (target.dataset.action === "cancel") {
          await act("/cancel", {}, "Cancelled.");
        } else if (target.hasAttribute("data-replay-from")) {
          await act("/replay", { from_call: target.dataset.replayFrom }, "Replaying from " + target.dataset.replayFrom.slice(0, 12) + "….");
        } else if (target.hasAttribute("data-toggle")) {
          const open = target.getAttribute("aria-expanded") !== "true";
          const group = row.dataset.group;
          if (group && open && !row.dataset.loaded) {
            forgetMore(group);
            await openGroup(group, "");
          } else {
            if (group && open) openGroups.set(group, row.dataset.loaded === "problems" ? "problems" : "");
            if (group && !open) openGroups.delete(group);
            fold(row, open);
          }
        } else if (target.hasAttribute("data-only-problems")) {
          forgetMore(row.dataset.group);
          await openGroup(row.dataset.group, "problems");
        } else if (target.hasAttribute("data-details")) {
          const id = target.dataset.details;
          const open = main().querySelector("tr[data-details-for=\"" + CSS.escape(id) + "\"]");
          if (open) { open.remove(); openDetails.delete(id); } else await openCall(id);
        } else if (target.hasAttribute("data-more")) {
          await loadMore(moreOf(target));
        }
      } catch (failure) {
        show(message, failure.message, "bad");
      }
    });

    if (!info().finished) follow();
    window.addEventListener("pagehide", stopFollowing);
  }

  if (body.dataset.page === "requests") initRequests();
  if (body.dataset.page === "request") initRequest();
})();

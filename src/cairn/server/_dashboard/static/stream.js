// The request page's streamed output: the chunks its calls wrote with
// ctx.stream.write, from the first, live while it runs (one EventSource on the
// API's .../stream route; it resumes with Last-Event-ID after a dropped link).
"use strict";
(function () {
  const pane = document.getElementById("stream-pane");
  const main = document.getElementById("request-main");
  if (!pane || !main) return;
  const text = document.getElementById("stream-text");
  const state = document.getElementById("stream-state");
  const api = document.body.dataset.api || "";
  const url = api + "/applications/" + encodeURIComponent(main.dataset.application) +
    "/requests/" + encodeURIComponent(main.dataset.id) + "/stream?after=0";
  const source = new EventSource(url);
  let lastRun = null;
  let finished = false;
  let count = 0;

  function piece(chunk) {
    if ("text" in chunk) return chunk.text;
    if ("json" in chunk) return JSON.stringify(chunk.json) + "\n";
    return "[" + atob(chunk.bytes_base64).length + " bytes]\n";
  }

  source.onmessage = function (message) {
    const event = JSON.parse(message.data);
    const chunk = event.RequestStreamChunk;
    finished = !chunk;
    if (!chunk) return;
    const follow = text.scrollTop + text.clientHeight >= text.scrollHeight - 4;
    if (lastRun !== null && chunk.run !== lastRun) {
      text.append(document.createTextNode("\n── run " + chunk.run + " ──\n"));
    }
    lastRun = chunk.run;
    text.append(document.createTextNode(piece(chunk)));
    count += 1;
    pane.hidden = false;
    state.textContent = count + (count === 1 ? " chunk" : " chunks");
    if (follow) text.scrollTop = text.scrollHeight;
  };
  // The server ends the stream after the request's final RequestFinished; any
  // other end (a restart) is reconnected by the browser, resuming after the last id.
  source.onerror = function () {
    if (finished) source.close();
  };
})();

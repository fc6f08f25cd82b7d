// Server-Sent Events over fetch(), so the request carries the API key in its Authorization
// header like every other call. EventSource cannot send headers, and a key (or a token) in the
// URL would end up in server logs, the browser's history and Referer headers.
//
// followEvents() does what EventSource does for us otherwise: it parses the stream (WHATWG
// HTML, "Server-sent events": event/id/data/retry fields, comments, CR, LF or CRLF line ends,
// chunks split anywhere) and, when the connection drops or the server ends the stream before
// the last event (ATELIER_API_EVENTS_MAX_S), reconnects with Last-Event-ID, so no event is
// missed or seen twice.

/** An answer other than 200 to the stream request: status and the problem+json body, if any. */
export class StreamRefused extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `the event stream answered ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Statuses worth a reconnect (the server or a proxy is busy or restarting). */
const TRANSIENT = new Set([502, 503, 504]);

/**
 * Follow the stream at `url` until `isLast(event)` says an event was the last one.
 * Options: headers (sent on each request), onEvent(event) with {type, id, data},
 * onReconnect(attempt), signal (an AbortSignal to stop), retryMs (first wait before a
 * reconnect; the server's `retry:` overrides it), maxRetries (reconnects in a row without an
 * event before giving up). Rejects with StreamRefused for a non-transient error answer.
 */
export async function followEvents(url, { headers = {}, onEvent, onReconnect, signal, isLast, retryMs = 500, maxRetries = 8 }) {
  let lastEventId = null;
  let failures = 0;
  for (;;) {
    const sent = { Accept: "text/event-stream", ...headers };
    if (lastEventId !== null) sent["Last-Event-ID"] = lastEventId;
    try {
      const response = await fetch(url, { headers: sent, cache: "no-store", signal });
      if (!response.ok) {
        const refused = new StreamRefused(response.status, await problemOf(response));
        if (!TRANSIENT.has(response.status)) throw refused;
      } else {
        for await (const event of parse(response.body)) {
          failures = 0;
          if (event.id !== null) lastEventId = event.id;
          if (event.retry !== null) retryMs = event.retry;
          if (event.data === null) continue;
          onEvent(event);
          if (isLast(event)) return;
        }
      }
    } catch (error) {
      if (signal?.aborted || error instanceof StreamRefused) throw error;
      // a network error or a dropped connection: reconnect below
    }
    failures += 1;
    if (failures > maxRetries) throw new Error("the event stream keeps failing");
    onReconnect?.(failures);
    await sleep(retryMs * failures, signal);
  }
}

/** The problem+json of an error answer, or null. */
export async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
}

/** The events of an SSE body, as {type, id, data, retry}; data null for a frame without data. */
export async function* parse(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let frame = newFrame();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return; // an unfinished frame is dropped, as the standard says
    buffer += value;
    // a CR at the end may be the first half of a CRLF: keep it until the next chunk
    const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    const lines = buffer.slice(0, cut).split(/\r\n|\r|\n/);
    buffer = lines.pop() + buffer.slice(cut);
    for (const line of lines) {
      if (line === "") {
        yield {
          type: frame.type || "message",
          id: frame.id,
          retry: frame.retry,
          data: frame.data.length ? frame.data.join("\n") : null,
        };
        frame = newFrame();
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: the server's keep-alive
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") frame.type = value;
      else if (field === "data") frame.data.push(value);
      else if (field === "id" && !value.includes("\0")) frame.id = value;
      else if (field === "retry" && /^\d+$/.test(value)) frame.retry = Number(value);
    }
  }
}

function newFrame() {
  return { type: "", id: null, retry: null, data: [] };
}

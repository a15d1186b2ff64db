// Stand-ins for what a browser gives the client (WebSocket, EventSource,
// fetch, window and document), which the tests drive by hand, with
// node's mock timers as the clock.

/** A WebSocket class whose instances the test opens, feeds and closes. */
export function fakeWebSocket() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closed = false;
      sockets.push(this);
    }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.closed = true; }
    // The test's side: the server accepts, says something, closes.
    accept() { this.onopen && this.onopen({}); }
    say(message) { this.onmessage && this.onmessage({data: JSON.stringify(message)}); }
    drop(code = 1006) { this.closed = true; this.onclose && this.onclose({code}); }
    fail() { this.onerror && this.onerror({}); }  // an error alone (Chromium, for a refused port)
  }
  FakeWebSocket.sockets = sockets;
  return FakeWebSocket;
}

/** An EventSource class; `emit` keeps lastEventId as the standard does. */
export function fakeEventSource() {
  const sources = [];
  class FakeEventSource {
    constructor(url) {
      this.url = url;
      this.closed = false;
      this.listeners = {};
      this.lastId = '';
      sources.push(this);
    }
    addEventListener(type, listener) { (this.listeners[type] ||= []).push(listener); }
    close() { this.closed = true; }
    accept() { this.onopen && this.onopen({}); }
    // An event with an id sets the last event id; one without keeps it.
    emit(type, data, id) {
      if (id !== undefined) this.lastId = id;
      const event = {type, data, lastEventId: this.lastId};
      if (type === 'message') this.onmessage && this.onmessage(event);
      for (const listener of this.listeners[type] || []) listener(event);
    }
    fail() { this.onerror && this.onerror({}); }
  }
  FakeEventSource.sources = sources;
  return FakeEventSource;
}

/** A fetch whose requests wait until the test answers (or fails) them. */
export function fakeFetch() {
  const requests = [];
  function fetch(url, init) {
    return new Promise((resolve, reject) => {
      const request = {url, init, done: false};
      request.answer = (status, body) => {
        request.done = true;
        resolve({ok: status >= 200 && status < 300, status, json: async () => body});
      };
      request.fail = (error = new TypeError('Failed to fetch')) => { request.done = true; reject(error); };
      if (init && init.signal) {
        init.signal.addEventListener('abort', () => {
          if (!request.done) request.fail(new DOMException('aborted', 'AbortError'));
          request.aborted = true;
        });
      }
      requests.push(request);
    });
  }
  fetch.requests = requests;
  fetch.pending = () => requests.filter((r) => !r.done);
  return fetch;
}

/** A window (online/offline) and a document (visibilitychange) the test fires. */
export function fakePage() {
  const window = new EventTarget();
  const document = new EventTarget();
  document.visibilityState = 'visible';
  return {
    window,
    document,
    online() { window.dispatchEvent(new Event('online')); },
    offline() { window.dispatchEvent(new Event('offline')); },
    show() { document.visibilityState = 'visible'; document.dispatchEvent(new Event('visibilitychange')); },
    hide() { document.visibilityState = 'hidden'; document.dispatchEvent(new Event('visibilitychange')); },
  };
}

/** Lets promise callbacks (a fetch's then) run. */
export async function settle() {
  for (let i = 0; i < 10; i += 1) await Promise.resolve();
}

/** A repeatable Math.random (a small linear congruential generator). */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
}

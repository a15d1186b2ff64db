// squall-resume: follow a Squall pub/sub channel from the browser (or node),
// and resume where you left off after the connection drops.
//
// No dependency, no build step: this classic script defines the global
// `SquallResume` (squall.resume.ClientScriptHandler serves it), and
// squall-resume.mjs is the ES module (`import {follow} from 'squall-resume'`)
// made of it. Types: squall-resume.d.ts. Tests: `node --test test/`.
//
// It speaks the three transports of squall.resume: a WebSocket
// (ChannelWebSocket), Server-Sent Events (ChannelEventSource) and long
// polling (ChannelPollHandler). It keeps the position of the last
// publication it delivered and sends it back when it reconnects, so the
// server replays what was missed: each publication is delivered once, in
// order. When the server says publications were lost (too long away),
// onreset is called: reload the state there.
//
// The states (docs/guide/resuming.md draws the machine):
//   connecting  a transport is being opened and the subscription asked for
//   open        the server confirmed the subscription (feed.transport says how)
//   retrying    waiting (exponential backoff, full jitter) before connecting again
//   failed      the server refused for good (not allowed, bad channel): feed.error
//   closed      feed.close() was called
//
// The backoff starts again from minDelay only once a subscription is
// confirmed, never when a socket merely opens: a server that accepts and
// closes (a crash loop, a draining node) is not hammered. The server sends
// a heartbeat on every transport; heard nothing for its interval plus
// heartbeatGrace, the client takes the connection for dead and resumes on
// a new one. The browser's `online` event and a page becoming visible
// reconnect at once. After falling back to Server-Sent Events or polling,
// a WebSocket is tried again now and then, and taken when it works.
//
// Positions are strings ("<offset>-<epoch>"); offsets are compared as
// decimal strings, exact at any size.
(function (global) {
  'use strict';

  /** Options' defaults (milliseconds). */
  const DEFAULTS = Object.freeze({
    minDelay: 500,           // the first retry's ceiling
    maxDelay: 30000,         // the largest ceiling
    connectTimeout: 10000,   // a transport that confirms nothing in this long is given up
    heartbeatGrace: 10000,   // silence tolerated past the server's heartbeat interval
    upgradeDelay: 60000,     // after a fallback, the first WebSocket try (then doubled)
    maxUpgradeDelay: 600000, // the longest wait between two WebSocket tries
  });

  // The longest delay a timer holds: browsers and node run a setTimeout
  // given more than 2^31-1 ms (about 24.8 days) after 1 ms instead.
  const MAX_TIMER = 2147483647;

  // The browser fires 'online' when an interface comes up, which can be a
  // moment before it carries traffic (an address, DNS, a VPN still being
  // set up). A try made then that fails before reaching the server is made
  // once more after this long, not after the backoff's wait (up to maxDelay).
  const ONLINE_RETRY = 1000;

  /** setTimeout with its delay bounded by MAX_TIMER (a server's heartbeat, an option). */
  function later(callback, ms) {
    return setTimeout(callback, Math.min(ms, MAX_TIMER));
  }

  /** The position as {offset, epoch} (offset a decimal string), or null if it is not one. */
  function parsePosition(position) {
    if (typeof position !== 'string') return null;
    const dash = position.indexOf('-');
    if (dash < 1) return null;
    const offset = position.slice(0, dash);
    if (!/^[0-9]+$/.test(offset)) return null;
    return {offset: offset.replace(/^0+(?=[0-9])/, ''), epoch: position.slice(dash + 1)};
  }

  /** -1, 0 or 1 as offset ``a`` (a decimal string) is before, at or after ``b``: exact past 2^53. */
  function compareOffsets(a, b) {
    if (a.length !== b.length) return a.length < b.length ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /** An error the client met: `code` (the server's, or 0), `temporary` (retried) and `transport`. */
  class ResumeError extends Error {
    constructor(message, code, temporary, transport) {
      super(message);
      this.name = 'ResumeError';
      this.code = code;
      this.temporary = temporary;
      this.transport = transport;
    }
  }

  // An HTTP status of a poll that a later poll may not get: 5xx, 408 and 429.
  function temporaryStatus(status) {
    return status >= 500 || status === 408 || status === 429 || status === 0;
  }

  function withParam(url, name, value) {
    if (value === null || value === undefined) return url;
    return url + (url.indexOf('?') < 0 ? '?' : '&') + name + '=' + encodeURIComponent(value);
  }

  function socketUrl(path) {
    if (/^wss?:\/\//.test(path)) return path;
    const here = globalThis.location;
    const scheme = here && here.protocol === 'https:' ? 'wss://' : 'ws://';
    return scheme + (here ? here.host : '') + path;
  }

  /** Follows one channel; returns the feed (see squall-resume.d.ts). */
  function follow(options) {
    const opts = Object.assign({}, DEFAULTS, options);
    const WebSocketClass = opts.WebSocket || globalThis.WebSocket;
    const EventSourceClass = opts.EventSource || globalThis.EventSource;
    const fetcher = opts.fetch || (typeof globalThis.fetch === 'function' ? globalThis.fetch.bind(globalThis) : null);
    const win = opts.window !== undefined ? opts.window : globalThis.window;
    const doc = opts.document !== undefined ? opts.document : globalThis.document;
    const transports = [];
    if (opts.websocket && opts.channel && typeof WebSocketClass === 'function') transports.push('websocket');
    if (opts.eventsource && typeof EventSourceClass === 'function') transports.push('eventsource');
    if (opts.poll && fetcher) transports.push('poll');
    if (!transports.length) throw new Error('SquallResume.follow: no transport URL given');
    const opens = {websocket: openWebSocket, eventsource: openEventSource, poll: openPoll};

    const feed = {
      position: typeof opts.since === 'string' && opts.since ? opts.since : null,
      state: 'connecting',
      transport: null,
      received: 0,
      resets: 0,
      attempts: 0,      // connections tried
      missed: 0,        // publications the server replays on this connection (known when open)
      error: null,      // the last error (feed.state 'failed': the one that stopped it)
      closed: false,
      close: close,
      reconnect: reconnect,
    };
    let which = 0;          // index into transports
    let attempt = 0;        // failures since the last confirmed subscription
    let current = null;     // the connection in use: {kind, stop()}
    let timer = null;       // the backoff's timer
    let probe = null;       // a WebSocket tried while on a fallback
    let probeTimer = null;
    let upgradeDelay = opts.upgradeDelay;
    const reached = {};     // transports that got through to the server on this page

    function setState(name) {
      feed.state = name;
      if (opts.onstate) opts.onstate(name, feed);
    }

    function report(error) {
      feed.error = error;
      if (opts.onerror) opts.onerror(error);
    }

    // Once, in order: a publication at or before the position delivered (same
    // epoch) was delivered. One without a position moves nothing.
    function deliver(data, position) {
      const next = parsePosition(position);
      if (next) {
        const last = parsePosition(feed.position);
        if (last && next.epoch === last.epoch && compareOffsets(next.offset, last.offset) <= 0) return;
        feed.position = position;
      }
      feed.received += 1;
      if (opts.onmessage) opts.onmessage(data, next ? position : null);
    }

    function reset(position) {
      if (parsePosition(position)) feed.position = position;
      feed.resets += 1;
      if (opts.onreset) opts.onreset(position);
    }

    function started(position) {
      if (!feed.position && parsePosition(position)) feed.position = position;
    }

    // What every transport calls back. `conn` is the connection calling: a
    // call from one that was stopped (or a probe not yet taken) does nothing.
    function hooks(conn) {
      const live = () => conn === current && !feed.closed;
      let heartbeat = null;   // ms between the server's heartbeats, once it said
      let silence = null;     // the timer that gives the connection up
      let heard = 0;
      const arm = (ms) => {
        if (silence !== null) clearTimeout(silence);
        silence = ms === null ? null : later(() => {
          silence = null;
          if (live()) lost(conn, new ResumeError('nothing heard for ' + ms + ' ms', 0, true, conn.kind));
          else if (conn === probe) probeFailed(conn);
        }, ms);
      };
      const hear = () => {
        heard = Date.now();
        if (conn.confirmed) arm(heartbeat === null ? null : heartbeat + opts.heartbeatGrace);
      };
      conn.disarm = () => arm(null);
      conn.overdue = () => heartbeat !== null && Date.now() - heard > heartbeat + opts.heartbeatGrace;
      arm(opts.connectTimeout);
      return {
        reached() { reached[conn.kind] = true; conn.through = true; },
        confirmed(position, missed, seconds) {
          if (conn.confirmed) return;
          conn.confirmed = true;
          // A heartbeat too long for a timer (or JSON's 1e999, Infinity) is
          // watched for the longest one: never taken for silence at once.
          heartbeat = typeof seconds === 'number' && seconds > 0 ? Math.min(seconds * 1000, MAX_TIMER) : null;
          hear();
          if (conn === probe) { adopt(conn, position, missed); return; }
          if (!live()) return;
          started(position);
          confirmed(conn, missed);
        },
        ping() { hear(); },
        publication(data, position) { hear(); if (live()) deliver(data, position); },
        reset(position) { hear(); if (live()) reset(position); },
        // A position to come back with, for a feed that has none yet.
        at(position) { if (live()) started(position); },
        lost(error) {
          arm(null);
          if (live()) lost(conn, error);
          else if (conn === probe) probeFailed(conn);
        },
        live: live,
      };
    }

    function connect() {
      timer = null;
      if (feed.closed || feed.state === 'failed') return;
      feed.attempts += 1;
      feed.missed = 0;
      setState('connecting');
      current = {kind: transports[which]};
      start(current);
    }

    // Opens conn.kind's transport for conn, and gives conn its stop().
    function start(conn) {
      conn.confirmed = false;
      conn.through = false;   // got an answer from the server (reached)
      const on = hooks(conn);
      let stop;
      try {
        stop = opens[conn.kind](on);
      } catch (error) {  // a URL the browser refuses, say
        stop = () => {};
        setTimeout(() => on.lost(new ResumeError(String(error), 0, true, conn.kind)), 0);
      }
      conn.stop = () => { conn.disarm(); stop(); };
    }

    function confirmed(conn, missed) {
      attempt = 0;
      feed.error = null;
      feed.missed = missed || 0;
      feed.transport = conn.kind;
      setState('open');
      if (conn.kind !== 'websocket' && transports[0] === 'websocket') scheduleProbe();
    }

    function lost(conn, error) {
      conn.stop();
      current = null;
      cancelProbe();
      report(error);
      if (!error.temporary) {
        setState('failed');
        return;
      }
      // A transport that never got through on this page (a proxy, a policy)
      // is left for the next one. One that did and now fails is kept: the
      // network or the server is down, and it will come back.
      if (!reached[conn.kind] && which + 1 < transports.length) which += 1;
      retry(conn.eager === true && !conn.through);
    }

    function retry(quick) {
      if (quick) {  // the try 'online' made, too early (once: the next one is not eager)
        setState('retrying');
        timer = later(connect, ONLINE_RETRY);
        return;
      }
      const ceiling = Math.min(opts.maxDelay, opts.minDelay * Math.pow(2, attempt));
      attempt += 1;
      setState('retrying');
      timer = later(connect, Math.random() * ceiling);
    }

    // A WebSocket tried beside the fallback in use; taken when it confirms.
    function scheduleProbe() {
      if (probeTimer !== null || probe !== null) return;
      probeTimer = later(() => {
        probeTimer = null;
        if (feed.closed || !current || current.kind === 'websocket') return;
        probe = {kind: 'websocket'};
        start(probe);
      }, upgradeDelay);
    }

    function probeFailed(conn) {
      conn.stop();
      if (probe !== conn) return;
      probe = null;
      upgradeDelay = Math.min(upgradeDelay * 2, opts.maxUpgradeDelay);
      if (current && current.confirmed) scheduleProbe();
    }

    function cancelProbe() {
      if (probeTimer !== null) clearTimeout(probeTimer);
      probeTimer = null;
      if (probe) probe.stop();
      probe = null;
    }

    function adopt(conn, position, missed) {
      probe = null;
      if (feed.closed || !current) { conn.stop(); return; }
      current.stop();
      current = conn;
      which = transports.indexOf('websocket');
      upgradeDelay = opts.upgradeDelay;
      started(position);
      confirmed(conn, missed);
    }

    // Now, not after the backoff's wait: the network is back, or the page is
    // seen again. A connection being made is left to finish (connectTimeout
    // bounds it), an open one is kept unless its heartbeat is overdue.
    function reconnect() {
      if (feed.closed || feed.state === 'failed') return;
      if (current && !(current.confirmed && current.overdue())) return;
      if (current) { current.stop(); current = null; }
      if (timer !== null) { clearTimeout(timer); timer = null; }
      connect();
    }

    function onOnline() {
      if (!current) which = 0;  // another network: the first transport may get through now
      reconnect();
      if (current && !current.confirmed) current.eager = true;
    }

    function onOffline() {
      if (feed.closed || feed.state === 'failed' || !current) return;
      lost(current, new ResumeError('the browser went offline', 0, true, current.kind));
    }

    function onVisible() {
      if (doc && doc.visibilityState === 'visible') reconnect();
    }

    function close() {
      if (feed.closed) return;
      feed.closed = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      cancelProbe();
      if (current) current.stop();
      current = null;
      if (win && win.removeEventListener) {
        win.removeEventListener('online', onOnline);
        win.removeEventListener('offline', onOffline);
      }
      if (doc && doc.removeEventListener) doc.removeEventListener('visibilitychange', onVisible);
      setState('closed');
    }

    function openWebSocket(on) {
      const socket = new WebSocketClass(socketUrl(opts.websocket));
      let done = false;
      const finish = (error) => { if (!done) { done = true; on.lost(error); } };
      socket.onopen = () => {
        on.reached();
        socket.send(JSON.stringify({subscribe: opts.channel, since: feed.position}));
      };
      socket.onmessage = (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch (error) { return; }
        if (!message || typeof message !== 'object') return;
        if (message.type === 'ping') { on.ping(); return; }
        // An error about no channel is about our request (the only one sent).
        if (message.type === 'error' && (message.channel === opts.channel || message.channel === null)) {
          const temporary = message.temporary !== false;  // older servers say nothing: retry
          finish(new ResumeError(message.message || 'refused', message.code || 0, temporary, 'websocket'));
          return;
        }
        if (message.channel !== opts.channel) return;
        if (message.type === 'publication') on.publication(message.data, message.position);
        else if (message.type === 'reset') on.reset(message.position);
        else if (message.type === 'subscribed') on.confirmed(message.position, message.missed, message.heartbeat);
      };
      socket.onclose = (event) => {
        finish(new ResumeError('the WebSocket closed (' + event.code + ')', event.code, true, 'websocket'));
      };
      // A connection that fails before it opens may say so by an error
      // alone (a refused port, a blocked URL): that ends it too.
      socket.onerror = () => finish(new ResumeError('the WebSocket failed', 0, true, 'websocket'));
      return () => {
        done = true;
        socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
        try { socket.close(); } catch (error) { /* closed already */ }
      };
    }

    function openEventSource(on) {
      const source = new EventSourceClass(withParam(opts.eventsource, 'since', feed.position),
                                          {withCredentials: !!opts.withCredentials});
      let done = false;
      // EventSource gives an event without an id the last id seen: a message
      // whose id did not change has no position of its own.
      let lastId = '';
      const idOf = (event) => {
        if (event.lastEventId === lastId) return null;
        lastId = event.lastEventId;
        return lastId;
      };
      source.onopen = () => on.reached();
      source.onmessage = (event) => {
        on.confirmed(null, 0, null);  // a server that sends no subscribed event
        on.publication(event.data, idOf(event));
      };
      source.addEventListener('reset', (event) => { idOf(event); on.reset(event.data); });
      source.addEventListener('ping', () => on.ping());
      source.addEventListener('subscribed', (event) => {
        idOf(event);
        let info;
        try { info = JSON.parse(event.data); } catch (error) { info = {}; }
        on.confirmed(info.position, info.missed, info.heartbeat);
      });
      source.onerror = () => {
        // The browser would retry by itself, with the server's fixed delay:
        // close it and come back with the backoff, from our position.
        if (done) return;
        done = true;
        source.close();
        on.lost(new ResumeError('the event stream failed', 0, true, 'eventsource'));
      };
      return () => { done = true; source.close(); };
    }

    function openPoll(on) {
      let done = false;
      let first = true;
      let controller = null;
      const once = () => {
        if (done) return;
        controller = typeof AbortController === 'function' ? new AbortController() : null;
        // The first poll of a connection answers at once: it opens the feed.
        // Later ones are held by the server for its heartbeat interval at most
        // (and given up after it, plus the grace: see hooks).
        const url = withParam(opts.poll, 'cursor', feed.position);
        fetcher(first ? withParam(url, 'wait', '0') : url,
                {credentials: 'same-origin', signal: controller ? controller.signal : undefined})
          .then((response) => {
            on.reached();
            if (!response.ok) {
              const status = response.status;
              throw new ResumeError('the poll answered ' + status, status, temporaryStatus(status), 'poll');
            }
            return response.json();
          })
          .then((answer) => {
            if (done) return;
            const pubs = Array.isArray(answer.publications) ? answer.publications : [];
            if (first) {
              first = false;
              // (The answer's position comes after its publications: it is
              // taken once they are delivered, not as the start.)
              on.confirmed(null, answer.recovered === false ? 0 : pubs.length, answer.heartbeat);
            } else {
              on.ping();
            }
            if (answer.recovered === false) on.reset(answer.position);
            for (const pub of pubs) on.publication(pub.data, pub.position);
            on.at(answer.position);
            once();
          })
          .catch((error) => {
            if (done) return;
            done = true;
            on.lost(error instanceof ResumeError ? error : new ResumeError(String(error), 0, true, 'poll'));
          });
      };
      once();
      return () => { done = true; if (controller) controller.abort(); };
    }

    if (win && win.addEventListener) {
      win.addEventListener('online', onOnline);
      win.addEventListener('offline', onOffline);
    }
    if (doc && doc.addEventListener) doc.addEventListener('visibilitychange', onVisible);
    connect();
    return feed;
  }

  global.SquallResume = {DEFAULTS, parsePosition, compareOffsets, ResumeError, follow};
})(typeof window !== 'undefined' ? window : globalThis);

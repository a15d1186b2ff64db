// squall-resume.js: follow a Squall pub/sub channel from the browser, and
// resume where you left off after the connection drops.
//
// Plain JavaScript, no build step, no dependency. Served by Squall
// (squall.resume.ClientScriptHandler). Speaks the three transports of
// squall.resume: a WebSocket (ChannelWebSocket), Server-Sent Events
// (ChannelEventSource) and long polling (ChannelPollHandler). It keeps the
// position of the last publication it delivered and sends it back when it
// reconnects, so the server replays what was missed: each publication is
// delivered once, in order. When the server says publications were lost
// (too long away), onreset is called: reload the state there.
//
//   const feed = SquallResume.follow({
//     channel: 'chat:lobby',                  // the channel (for the WebSocket)
//     websocket: '/live',                     // any of these three URLs; tried in
//     eventsource: '/rooms/lobby/events',     // this order, the next one used when
//     poll: '/rooms/lobby/poll',              // a transport never connects
//     since: null,                            // a position to start after, if known
//     onmessage(data, position) {},
//     onreset(position) {},                   // publications were lost: reload
//     onstate(state) {},                      // 'open' (with feed.transport) or 'retrying'
//   });
//   feed.close();
//
// Reconnection waits a random time between 0 and min(maxDelay,
// minDelay * 2^attempt) ("full jitter"), so that clients cut off together
// do not all come back in the same instant.
(function (global) {
  'use strict';

  function parse(position) {
    if (typeof position !== 'string') return null;
    const dash = position.indexOf('-');
    if (dash < 1) return null;
    return {offset: Number(position.slice(0, dash)), epoch: position.slice(dash + 1)};
  }

  function withParam(url, name, value) {
    if (value === null || value === undefined) return url;
    return url + (url.indexOf('?') < 0 ? '?' : '&') + name + '=' + encodeURIComponent(value);
  }

  function absoluteSocketUrl(path) {
    if (/^wss?:\/\//.test(path)) return path;
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    return scheme + location.host + path;
  }

  function follow(options) {
    const opts = Object.assign({minDelay: 500, maxDelay: 30000, pollTimeout: 60000}, options);
    const transports = [];
    if (opts.websocket && opts.channel && typeof WebSocket === 'function') transports.push('websocket');
    if (opts.eventsource && typeof EventSource === 'function') transports.push('eventsource');
    if (opts.poll) transports.push('poll');
    if (!transports.length) throw new Error('SquallResume.follow: no transport URL given');

    const feed = {
      position: opts.since || null,
      transport: null,
      received: 0,
      resets: 0,
      attempts: 0,
      closed: false,
      close: close,
    };
    let which = 0;          // index into transports
    let attempt = 0;        // reconnections since the last successful open
    let current = null;     // {stop()} of the connection in use
    let timer = null;
    const worked = {};      // transports that opened at least once

    function state(name) { if (opts.onstate) opts.onstate(name, feed); }

    function deliver(data, position) {
      const next = parse(position);
      const last = parse(feed.position);
      // Once, in order: anything at or before the position already
      // delivered (same epoch) was delivered.
      if (next && last && next.epoch === last.epoch && next.offset <= last.offset) return;
      feed.position = position;
      feed.received += 1;
      if (opts.onmessage) opts.onmessage(data, position);
    }

    function reset(position) {
      feed.position = position;
      feed.resets += 1;
      if (opts.onreset) opts.onreset(position);
    }

    function opened() {
      attempt = 0;
      feed.transport = transports[which];
      worked[feed.transport] = true;
      state('open');
    }

    function lost(everOpened) {
      if (feed.closed) return;
      current = null;
      // A transport that never opened here does not get through (a proxy,
      // a policy): the next one. One that worked and now fails is kept: the
      // network or the server is down, and it will come back.
      if (!everOpened && !worked[transports[which]] && which + 1 < transports.length) which += 1;
      const ceiling = Math.min(opts.maxDelay, opts.minDelay * Math.pow(2, attempt));
      attempt += 1;
      state('retrying');
      timer = setTimeout(connect, Math.random() * ceiling);
    }

    function connectWebSocket() {
      let socket;
      let open = false;
      let done = false;
      const finish = () => { if (!done) { done = true; lost(open); } };
      try {
        socket = new WebSocket(absoluteSocketUrl(opts.websocket));
      } catch (error) {
        setTimeout(finish, 0);
        return {stop() { done = true; }};
      }
      socket.onopen = () => {
        open = true;
        socket.send(JSON.stringify({subscribe: opts.channel, since: feed.position}));
        opened();
      };
      socket.onmessage = (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch (error) { return; }
        if (message.channel !== opts.channel) return;
        if (message.type === 'publication') deliver(message.data, message.position);
        else if (message.type === 'reset') reset(message.position);
        else if (message.type === 'subscribed') {
          if (!feed.position && message.position) feed.position = message.position;
        } else if (message.type === 'error' && opts.onerror) opts.onerror(message.message);
      };
      socket.onerror = () => { if (!open) finish(); };
      socket.onclose = finish;
      return {stop() { done = true; socket.close(); }};
    }

    function connectEventSource() {
      const source = new EventSource(withParam(opts.eventsource, 'since', feed.position),
                                     {withCredentials: !!opts.withCredentials});
      let open = false;
      let done = false;
      source.onopen = () => { open = true; opened(); };
      source.onmessage = (event) => deliver(event.data, event.lastEventId);
      source.addEventListener('reset', (event) => reset(event.data));
      source.addEventListener('subscribed', (event) => {
        let info;
        try { info = JSON.parse(event.data); } catch (error) { return; }
        if (!feed.position && info.position) feed.position = info.position;
      });
      source.onerror = () => {
        // The browser would retry by itself, but with the server's fixed
        // delay: close it and come back with jitter, from our position.
        if (done) return;
        done = true;
        source.close();
        lost(open);
      };
      return {stop() { done = true; source.close(); }};
    }

    function connectPoll() {
      let done = false;
      let open = false;
      const controller = typeof AbortController === 'function' ? new AbortController() : null;
      const once = () => {
        if (done) return;
        const timeout = setTimeout(() => controller && controller.abort(), opts.pollTimeout);
        // The first poll of a connection answers at once: it opens the feed.
        const url = withParam(opts.poll, 'cursor', feed.position);
        fetch(open ? url : withParam(url, 'wait', '0'),
              {credentials: 'same-origin', signal: controller ? controller.signal : undefined})
          .then((response) => {
            if (!response.ok) throw new Error('poll answered ' + response.status);
            return response.json();
          })
          .then((answer) => {
            clearTimeout(timeout);
            if (done) return;
            if (!open) { open = true; opened(); }
            if (answer.recovered === false) reset(answer.position);
            for (const pub of answer.publications) deliver(pub.data, pub.position);
            if (!feed.position && answer.position) feed.position = answer.position;
            once();
          })
          .catch(() => {
            clearTimeout(timeout);
            if (done) return;
            done = true;
            lost(open);
          });
      };
      once();
      return {stop() { done = true; if (controller) controller.abort(); }};
    }

    function connect() {
      timer = null;
      if (feed.closed) return;
      feed.attempts += 1;
      const kind = transports[which];
      if (kind === 'websocket') current = connectWebSocket();
      else if (kind === 'eventsource') current = connectEventSource();
      else current = connectPoll();
    }

    function close() {
      feed.closed = true;
      if (timer !== null) clearTimeout(timer);
      if (current) current.stop();
      current = null;
    }

    connect();
    return feed;
  }

  global.SquallResume = {follow: follow, parsePosition: parse};
})(typeof window !== 'undefined' ? window : this);

// squall-resume.mjs under node's test runner: the state machine driven by
// hand through fake transports, on node's mock clock.
import {afterEach, beforeEach, describe, mock, test} from 'node:test';
import assert from 'node:assert/strict';
import {compareOffsets, follow, parsePosition} from '../squall-resume.mjs';
import {fakeEventSource, fakeFetch, fakePage, fakeWebSocket, seededRandom, settle} from './fakes.mjs';

beforeEach(() => {
  mock.timers.enable({apis: ['setTimeout', 'Date'], now: 0});
  mock.method(Math, 'random', () => 1);  // each wait is its ceiling
});
afterEach(() => {
  mock.timers.reset();
  mock.restoreAll();
});

function setup(options = {}) {
  const WebSocket = fakeWebSocket();
  const EventSource = fakeEventSource();
  const fetch = fakeFetch();
  const page = fakePage();
  const log = {messages: [], resets: [], states: [], errors: []};
  const feed = follow({
    channel: 'room:a',
    websocket: 'ws://127.0.0.1/live',
    WebSocket, EventSource, fetch,
    window: page.window,
    document: page.document,
    onmessage: (data, position) => log.messages.push([data, position]),
    onreset: (position) => log.resets.push(position),
    onstate: (state) => log.states.push(state),
    onerror: (error) => log.errors.push(error),
    ...options,
  });
  const socket = () => WebSocket.sockets.at(-1);
  return {feed, WebSocket, EventSource, fetch, page, log, socket};
}

// The server's side of a WebSocket subscription.
function subscribed(socket, position = '0-e', heartbeat = 25) {
  socket.accept();
  socket.say({type: 'subscribed', channel: 'room:a', position, recovered: null, missed: 0, heartbeat});
}

const publication = (data, position) => ({type: 'publication', channel: 'room:a', data, position});

describe('positions', () => {
  test('offsets are exact past 2^53', () => {
    assert.equal(2 ** 53 + 1, 2 ** 53);  // what a JS number does to them
    assert.equal(compareOffsets(parsePosition('9007199254740993-e').offset, '9007199254740992'), 1);
    assert.equal(compareOffsets('10', '9'), 1);
    assert.equal(parsePosition('007-e').offset, '7');
    assert.equal(parsePosition('x-e'), null);
    const {socket, log, feed} = setup();
    subscribed(socket(), '9007199254740991-e');
    socket().say(publication('a', '9007199254740992-e'));
    socket().say(publication('b', '9007199254740993-e'));
    socket().say(publication('b again', '9007199254740993-e'));
    assert.deepEqual(log.messages.map(([data]) => data), ['a', 'b']);
    assert.equal(feed.position, '9007199254740993-e');
  });

  test('a publication without a position keeps the last one (WebSocket)', () => {
    const {socket, log, feed} = setup();
    subscribed(socket(), '4-e');
    socket().say(publication('a', '5-e'));
    socket().say(publication('foreign', null));
    assert.deepEqual(log.messages, [['a', '5-e'], ['foreign', null]]);
    assert.equal(feed.position, '5-e');
    socket().drop();
    mock.timers.tick(500);
    assert.deepEqual(socket().sent, []);
    socket().accept();
    assert.deepEqual(socket().sent, [{subscribe: 'room:a', since: '5-e'}]);
  });

  test('a publication without an id keeps the last one (Server-Sent Events)', () => {
    const {EventSource, log, feed} = setup({websocket: null, eventsource: '/events'});
    const source = EventSource.sources[0];
    source.accept();
    source.emit('subscribed', JSON.stringify({position: '4-e', recovered: null, heartbeat: 25}), '4-e');
    source.emit('message', 'foreign');           // no id: the last one stays
    source.emit('message', 'a', '5-e');
    source.emit('message', 'foreign again');
    assert.deepEqual(log.messages, [['foreign', null], ['a', '5-e'], ['foreign again', null]]);
    assert.equal(feed.position, '5-e');
    source.fail();
    mock.timers.tick(500);
    assert.equal(EventSource.sources[1].url, '/events?since=5-e');
  });

  test('a publication without a position keeps the last one (long polling)', async () => {
    const {fetch, log, feed} = setup({websocket: null, poll: '/poll'});
    fetch.pending()[0].answer(200, {publications: [], position: '4-e', recovered: true, heartbeat: 25});
    await settle();
    fetch.pending()[0].answer(200, {
      publications: [{data: 'a', position: '5-e'}, {data: 'foreign', position: null}],
      position: '5-e', recovered: true, heartbeat: 25,
    });
    await settle();
    assert.deepEqual(log.messages, [['a', '5-e'], ['foreign', null]]);
    assert.equal(feed.position, '5-e');
    assert.equal(fetch.pending()[0].url, '/poll?cursor=5-e');
  });

  test('a first poll that finds publications delivers them all', async () => {
    const {fetch, log, feed} = setup({websocket: null, poll: '/poll'});
    fetch.pending()[0].answer(200, {
      publications: [{data: 'a', position: '5-e'}, {data: 'b', position: '6-e'}],
      position: '6-e', recovered: true, heartbeat: 25,
    });
    await settle();
    assert.deepEqual(log.messages.map(([data]) => data), ['a', 'b']);
    assert.equal(feed.position, '6-e');
    assert.equal(feed.missed, 2);
  });
});

describe('errors', () => {
  test('a temporary error subscribes again after a backoff, from the position', () => {
    const {socket, WebSocket, log, feed} = setup();
    subscribed(socket(), '3-e');
    socket().drop();
    mock.timers.tick(500);
    socket().accept();
    socket().say({type: 'error', channel: 'room:a', message: 'live updates unavailable', code: 503, temporary: true});
    assert.equal(feed.state, 'retrying');
    assert.ok(socket().closed);
    assert.equal(log.errors.at(-1).code, 503);
    mock.timers.tick(999);
    assert.equal(WebSocket.sockets.length, 2);  // no confirmation in between: the wait doubled
    mock.timers.tick(1);
    subscribed(socket(), '3-e');
    assert.deepEqual(socket().sent, [{subscribe: 'room:a', since: '3-e'}]);
    assert.equal(feed.state, 'open');
  });

  test('a permanent error stops and tells the application', () => {
    const {socket, WebSocket, log, feed, page} = setup();
    socket().accept();
    socket().say({type: 'error', channel: 'room:a', message: "not allowed to subscribe to 'room:a'", code: 403, temporary: false});
    assert.equal(feed.state, 'failed');
    assert.equal(log.errors.length, 1);
    assert.equal(log.errors[0].temporary, false);
    assert.equal(log.errors[0].code, 403);
    assert.equal(feed.error, log.errors[0]);
    mock.timers.tick(3600 * 1000);
    page.online();
    page.show();
    assert.equal(WebSocket.sockets.length, 1);
  });

  test('a poll answered 403 is permanent, 503 temporary', async () => {
    const {fetch, feed} = setup({websocket: null, poll: '/poll'});
    fetch.pending()[0].answer(503, null);
    await settle();
    assert.equal(feed.state, 'retrying');
    mock.timers.tick(500);
    fetch.pending()[0].answer(403, null);
    await settle();
    assert.equal(feed.state, 'failed');
    mock.timers.tick(3600 * 1000);
    assert.equal(fetch.requests.length, 2);
  });
});

describe('backoff', () => {
  test('resets when the subscription is confirmed, not when the socket opens', () => {
    const {socket, WebSocket, feed} = setup({maxDelay: 8000});
    const waits = [];
    for (let n = 0; n < 6; n += 1) {
      socket().accept();  // open, then closed before any answer
      socket().drop(1013);
      const before = WebSocket.sockets.length;
      let waited = 0;
      while (WebSocket.sockets.length === before && waited < 60000) { mock.timers.tick(100); waited += 100; }
      waits.push(waited);
    }
    assert.deepEqual(waits, [500, 1000, 2000, 4000, 8000, 8000]);
    subscribed(socket());
    assert.equal(feed.state, 'open');
    socket().drop();
    mock.timers.tick(499);
    assert.equal(feed.state, 'retrying');
    mock.timers.tick(1);
    assert.equal(feed.state, 'connecting');
  });

  test('a server that accepts and closes for 10 minutes is reconnected to a bounded number of times', () => {
    Math.random.mock.mockImplementation(seededRandom(72));
    const {socket, feed} = setup();
    const end = 10 * 60 * 1000;
    for (let now = 0; now < end; now += 50) {
      const last = socket();
      if (!last.closed) { last.accept(); last.drop(1013); }
      mock.timers.tick(50);
    }
    // Full jitter under a 30 s ceiling waits 15 s on average: about 40
    // connections in 10 minutes. The client before this counted 2,369.
    assert.ok(feed.attempts >= 20 && feed.attempts <= 80, `${feed.attempts} connections`);
  });
});

describe('heartbeat', () => {
  test('a silent WebSocket is given up after the interval plus the grace', () => {
    const {socket, WebSocket, feed} = setup({heartbeatGrace: 5000});
    subscribed(socket(), '1-e', 10);
    for (let n = 0; n < 5; n += 1) { mock.timers.tick(9000); socket().say({type: 'ping'}); }
    assert.equal(feed.state, 'open');
    mock.timers.tick(14999);
    assert.equal(feed.state, 'open');
    mock.timers.tick(1);
    assert.equal(feed.state, 'retrying');
    assert.ok(WebSocket.sockets[0].closed);
    mock.timers.tick(500);
    socket().accept();
    assert.deepEqual(socket().sent, [{subscribe: 'room:a', since: '1-e'}]);
  });

  test('a silent event stream is given up too', () => {
    const {EventSource, feed} = setup({websocket: null, eventsource: '/events', heartbeatGrace: 5000});
    const source = EventSource.sources[0];
    source.accept();
    source.emit('subscribed', JSON.stringify({position: '1-e', recovered: null, heartbeat: 10}), '1-e');
    mock.timers.tick(9000);
    source.emit('ping', '{}');
    mock.timers.tick(14999);
    assert.equal(feed.state, 'open');
    mock.timers.tick(1);
    assert.equal(feed.state, 'retrying');
    assert.ok(source.closed);
  });

  test('a poll with no answer is given up after the interval plus the grace', async () => {
    const {fetch, feed} = setup({websocket: null, poll: '/poll', heartbeatGrace: 5000});
    fetch.pending()[0].answer(200, {publications: [], position: '1-e', recovered: true, heartbeat: 10});
    await settle();
    const held = fetch.pending()[0];
    mock.timers.tick(14999);
    assert.equal(feed.state, 'open');
    mock.timers.tick(1);
    await settle();
    assert.ok(held.aborted);
    assert.equal(feed.state, 'retrying');
  });

  test('a heartbeat longer than a timer holds is never taken for silence at once', () => {
    // Browsers and node run a setTimeout given more than 2^31-1 ms after
    // 1 ms: the mock clock does the same here, and records every delay.
    const delays = [];
    const mocked = globalThis.setTimeout;
    globalThis.setTimeout = (callback, ms, ...rest) => {
      delays.push(ms);
      return mocked(callback, ms > 2 ** 31 - 1 ? 1 : ms, ...rest);
    };
    try {
      for (const heartbeat of ['2147484', '1e12', '1e999']) {  // 1e999: Infinity once parsed
        delays.length = 0;
        const {socket, WebSocket, feed} = setup();
        socket().accept();
        socket().onmessage({data: '{"type": "subscribed", "channel": "room:a", "position": "1-e", ' +
                                  `"recovered": null, "missed": 0, "heartbeat": ${heartbeat}}`});
        mock.timers.tick(6000);
        assert.equal(feed.state, 'open', `heartbeat ${heartbeat} s`);
        assert.equal(WebSocket.sockets.length, 1, `heartbeat ${heartbeat} s`);
        assert.ok(delays.every((ms) => ms <= 2 ** 31 - 1), `delays ${delays}`);
        // Still watched: silent for the longest timer, it is given up.
        mock.timers.tick(2 ** 31 - 1);
        assert.equal(feed.state, 'retrying');
        feed.close();
      }
      // The same bound on the options' delays.
      delays.length = 0;
      const {socket, feed} = setup({minDelay: 2 ** 40, maxDelay: 2 ** 41});
      socket().drop();
      assert.equal(feed.state, 'retrying');
      assert.ok(delays.every((ms) => ms <= 2 ** 31 - 1), `delays ${delays}`);
      mock.timers.tick(6000);
      assert.equal(feed.state, 'retrying');
      feed.close();
    } finally {
      globalThis.setTimeout = mocked;
    }
  });

  test('a connection that never confirms is given up after connectTimeout', () => {
    const {socket, feed} = setup({connectTimeout: 3000});
    socket().accept();
    mock.timers.tick(3000);
    assert.equal(feed.state, 'retrying');
  });
});

describe('the page', () => {
  test('online reconnects at once; offline drops the connection', () => {
    const {socket, WebSocket, feed, page} = setup({minDelay: 20000, maxDelay: 60000});
    subscribed(socket());
    page.offline();
    assert.equal(feed.state, 'retrying');
    assert.ok(WebSocket.sockets[0].closed);
    mock.timers.tick(1000);
    assert.equal(WebSocket.sockets.length, 1);
    page.online();
    assert.equal(WebSocket.sockets.length, 2);
    assert.equal(feed.state, 'connecting');
  });

  test('a try made at online that fails before the server answers is made again after 1 s, once', () => {
    // The browser can say it is online a moment before its network carries
    // traffic: that first try fails at once, and the backoff is not waited.
    const {socket, WebSocket, feed, page} = setup({minDelay: 600000, maxDelay: 600000});
    subscribed(socket());
    page.offline();
    page.online();
    assert.equal(WebSocket.sockets.length, 2);
    socket().drop();  // never opened
    assert.equal(feed.state, 'retrying');
    mock.timers.tick(999);
    assert.equal(WebSocket.sockets.length, 2);
    mock.timers.tick(1);
    assert.equal(WebSocket.sockets.length, 3);
    socket().drop();  // the quick try fails too: back to the backoff
    mock.timers.tick(599999);
    assert.equal(WebSocket.sockets.length, 3);
    mock.timers.tick(1);
    assert.equal(WebSocket.sockets.length, 4);
  });

  test('a try made at online that the server refuses waits out the backoff', () => {
    const {socket, WebSocket, page} = setup({minDelay: 600000, maxDelay: 600000});
    subscribed(socket());
    page.offline();
    page.online();
    socket().accept();
    socket().drop(1013);  // reached the server, which closed: not the network
    mock.timers.tick(599999);
    assert.equal(WebSocket.sockets.length, 2);
    mock.timers.tick(1);
    assert.equal(WebSocket.sockets.length, 3);
  });

  test('online leaves a connection being made to finish', () => {
    const {WebSocket, page} = setup();
    page.online();
    assert.equal(WebSocket.sockets.length, 1);
    assert.ok(!WebSocket.sockets[0].closed);
  });

  test('a page shown with its heartbeat overdue resumes at once', () => {
    const {socket, WebSocket, page} = setup({heartbeatGrace: 5000});
    subscribed(socket(), '1-e', 10);
    mock.method(Date, 'now', () => 60000);  // a sleeping laptop: its timers did not run
    page.show();
    assert.equal(WebSocket.sockets.length, 2);
    assert.ok(WebSocket.sockets[0].closed);
  });

  test('online keeps an open connection that is alive', () => {
    const {socket, WebSocket, page} = setup();
    subscribed(socket());
    page.online();
    assert.equal(WebSocket.sockets.length, 1);
  });

  test('a page shown again reconnects at once, or when its heartbeat is overdue', () => {
    const {socket, WebSocket, page} = setup({minDelay: 20000, maxDelay: 60000});
    socket().drop();
    page.hide();
    page.show();
    assert.equal(WebSocket.sockets.length, 2);
    subscribed(socket(), '1-e', 10);
    page.show();
    assert.equal(WebSocket.sockets.length, 2);  // alive: kept
  });

  test('close stops everything', () => {
    const {socket, WebSocket, feed, page, log} = setup();
    subscribed(socket());
    feed.close();
    assert.equal(feed.state, 'closed');
    assert.ok(socket().closed);
    page.online();
    mock.timers.tick(3600 * 1000);
    assert.equal(WebSocket.sockets.length, 1);
    assert.equal(log.states.at(-1), 'closed');
  });
});

describe('transports', () => {
  test('falls back when the WebSocket never gets through, and takes it again later', () => {
    const {socket, WebSocket, EventSource, feed, log} = setup({eventsource: '/events', upgradeDelay: 60000});
    socket().drop();  // never opened
    mock.timers.tick(500);
    const source = EventSource.sources[0];
    source.accept();
    source.emit('subscribed', JSON.stringify({position: '2-e', recovered: null, heartbeat: 25}), '2-e');
    assert.equal(feed.transport, 'eventsource');
    for (let n = 0; n < 3; n += 1) { mock.timers.tick(20000); source.emit('ping', '{}'); }
    assert.equal(WebSocket.sockets.length, 2);  // the try, after upgradeDelay
    socket().accept();
    assert.deepEqual(socket().sent, [{subscribe: 'room:a', since: '2-e'}]);
    source.emit('message', 'a', '3-e');          // still on the event stream meanwhile
    socket().say({type: 'subscribed', channel: 'room:a', position: '2-e', recovered: true, missed: 1, heartbeat: 25});
    socket().say(publication('a', '3-e'));      // replayed: shown once
    socket().say(publication('b', '4-e'));
    assert.equal(feed.transport, 'websocket');
    assert.ok(source.closed);
    assert.deepEqual(log.messages.map(([data]) => data), ['a', 'b']);
  });

  test('a WebSocket that fails with an error alone falls back too', () => {
    const {socket, EventSource, feed} = setup({eventsource: '/events'});
    socket().fail();
    assert.equal(feed.state, 'retrying');
    mock.timers.tick(500);
    assert.equal(EventSource.sources.length, 1);
  });

  test('a failed WebSocket try waits twice as long before the next', () => {
    const {socket, WebSocket, EventSource} = setup({eventsource: '/events', upgradeDelay: 1000});
    socket().drop();
    mock.timers.tick(500);
    const source = EventSource.sources[0];
    source.accept();
    source.emit('subscribed', JSON.stringify({position: '2-e', recovered: null, heartbeat: null}), '2-e');
    mock.timers.tick(1000);
    socket().drop();
    mock.timers.tick(1999);
    assert.equal(WebSocket.sockets.length, 2);
    mock.timers.tick(1);
    assert.equal(WebSocket.sockets.length, 3);
  });
});

// The chat-pattern server of benchmarks/c1m in Node with the `ws` package.
//
// node server.js PORT ADMIN_FIRST WORKERS PING_SECONDS
//
// NODE_PATH must find `ws` (the harness installs it with npm into a
// temporary directory; nothing of it is committed). The primary forks
// WORKERS workers that share PORT (cluster, SCHED_RR: the primary accepts
// and hands the connections round, so that each stays under its file
// limit; with SCHED_NONE a worker stopped answering during the 100,000
// step, cause not found), worker i answers the admin
// requests of run.py on ADMIN_FIRST + i: POST /admin/channels?id=N&t=T,
// POST /admin/all?id=N&t=T, GET /admin/stats, POST /admin/gc-reset.
// A broadcast is ws.send() to each subscriber (the `ws` README's way).
// The primary prints one JSON line when every worker listens:
// {"ready": PORT, "pids": [...]}.
'use strict';
const cluster = require('cluster');
const http = require('http');

const [port, adminFirst, workers, ping] = process.argv.slice(2).map(Number);
const NCHANNELS = 100;

if (cluster.isPrimary) {
  cluster.schedulingPolicy = cluster.SCHED_RR;
  let ready = 0;
  const pids = [];
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork({ C1M_WORKER: String(i) });
    pids.push(w.process.pid);
    w.on('message', (m) => {
      if (m === 'listening' && ++ready === workers) {
        process.stdout.write(JSON.stringify({ ready: port, pids }) + '\n');
      }
    });
  }
  process.on('SIGTERM', () => {
    for (const id in cluster.workers) cluster.workers[id].process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const { WebSocketServer } = require('ws');
  const index = Number(process.env.C1M_WORKER);
  const channels = Array.from({ length: NCHANNELS }, () => new Set());
  const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
  const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false });
  wss.on('connection', (ws) => {
    let channel = null;
    ws.on('message', (data) => {
      const text = data.toString();
      if (channel === null && text.startsWith('s ')) {
        channel = channels[Number(text.slice(2)) % NCHANNELS];
        channel.add(ws);
        ws.send('k');
      }
    });
    ws.on('close', () => { if (channel !== null) channel.delete(ws); });
    ws.on('error', () => {});
    if (ping > 0) {
      ws.alive = true;
      ws.on('pong', () => { ws.alive = true; });
    }
  });
  if (ping > 0) {
    // The `ws` README's heartbeat: one interval for all, terminate the silent.
    setInterval(() => {
      for (const ws of wss.clients) {
        if (!ws.alive) { ws.terminate(); continue; }
        ws.alive = false;
        ws.ping();
      }
    }, ping * 1000);
  }
  const sendAll = (set, message) => {
    let sent = 0;
    for (const ws of set) {
      if (ws.readyState === 1) { ws.send(message); sent++; }
    }
    return sent;
  };
  let cpu0 = process.cpuUsage();
  const admin = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const q = url.searchParams;
    const t0 = process.hrtime.bigint();
    let body;
    if (url.pathname === '/admin/channels') {
      const first = Number(q.get('id'));
      let sent = 0;
      channels.forEach((ch, i) => { sent += sendAll(ch, `${first + i} ${q.get('t')}`); });
      body = { secs: Number(process.hrtime.bigint() - t0) / 1e9, sent, skipped: 0 };
    } else if (url.pathname === '/admin/all') {
      const message = `${q.get('id')} ${q.get('t')}`;
      let sent = 0;
      for (const ch of channels) sent += sendAll(ch, message);
      body = { secs: Number(process.hrtime.bigint() - t0) / 1e9, sent, skipped: 0 };
    } else if (url.pathname === '/admin/stats') {
      let subs = 0;
      for (const ch of channels) subs += ch.size;
      // No collector callbacks here: passes and time stay 0 (not measured).
      body = {
        subs,
        rss_kb: Math.round(process.memoryUsage().rss / 1024),
        heap_used_kb: Math.round(process.memoryUsage().heapUsed / 1024),
        gc: { passes: [0, 0, 0], secs: [0, 0, 0], max_pass_s: 0 },
      };
    } else if (url.pathname === '/admin/gc-reset') {
      cpu0 = process.cpuUsage();
      body = 'ok';
    } else {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  });
  let listening = 0;
  const done = () => { if (++listening === 2) process.send('listening'); };
  server.listen({ port, host: '127.0.0.1', backlog: 65535 }, done);
  admin.listen(adminFirst + index, '127.0.0.1', done);
}

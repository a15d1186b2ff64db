// Socket.IO 4.8 with @socket.io/redis-adapter's sharded adapter (SPUBLISH /
// SSUBSCRIBE, subscriptionMode "dynamic": one Redis channel per room), the
// contender of make bench-cluster (benchmarks/cluster/bench.py).
//
//   node server.js serve HOST PORT REDIS     a node: each client joins the room
//                                            named by its ?ch= query argument
//   node server.js publish REDIS CHANNELS RATE SECONDS
//                                            a node without clients that emits
//                                            to the rooms in turn at RATE/s,
//                                            the send time inside each message
//
// REDIS is redis://host:port (one server) or cluster://host:port,host:port.
// Prints "ready" when serving; the publisher prints one JSON line of the
// counts it published per room.
"use strict";
const { Server } = require("socket.io");
const { createShardedAdapter } = require("@socket.io/redis-adapter");
const { createClient, createCluster } = require("redis");

function redisClient(url) {
  if (url.startsWith("cluster://")) {
    const rootNodes = url.slice("cluster://".length).split(",").map((hp) => ({ url: `redis://${hp}` }));
    return createCluster({ rootNodes });
  }
  return createClient({ url });
}

async function makeServer(redisUrl) {
  const pub = redisClient(redisUrl);
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on("error", (e) => console.error("redis:", e.message));
  await Promise.all([pub.connect(), sub.connect()]);
  const io = new Server({
    transports: ["websocket"],
    serveClient: false,
    adapter: createShardedAdapter(pub, sub, { subscriptionMode: "dynamic" }),
  });
  return io;
}

async function serve(host, port, redisUrl) {
  const io = await makeServer(redisUrl);
  io.on("connection", (socket) => {
    const ch = socket.handshake.query.ch;
    if (typeof ch === "string" && /^[0-9]{1,6}$/.test(ch)) socket.join(`c${ch}`);
  });
  io.listen(Number(port), { host });
  // listen() binds synchronously enough for the harness: it waits for the port too.
  console.log("ready");
}

async function publish(redisUrl, channels, rate, seconds) {
  const io = await makeServer(redisUrl);
  channels = Number(channels);
  rate = Number(rate);
  const total = Math.round(rate * Number(seconds));
  const counts = new Array(channels).fill(0);
  const pad = "x".repeat(40);
  const start = process.hrtime.bigint();
  let sent = 0;
  const tick = () => {
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    const due = Math.min(total, Math.floor(elapsed * rate) + 1);
    while (sent < due) {
      const ch = sent % channels;
      counts[ch] += 1;
      const now = Date.now() / 1000;
      io.to(`c${ch}`).emit("m", `${ch} ${counts[ch]} ${now.toFixed(6)} ${pad}`);
      sent += 1;
    }
    if (sent < total) setTimeout(tick, 2);
    else setTimeout(() => { console.log(JSON.stringify({ published: counts })); process.exit(0); }, 200);
  };
  tick();
}

const [mode, ...args] = process.argv.slice(2);
const run = mode === "serve" ? serve(...args) : publish(...args);
run.catch((e) => { console.error(e); process.exit(1); });
process.on("SIGTERM", () => process.exit(0));

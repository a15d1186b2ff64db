// A reader of the chaos checker (benchmarks/chaos.py): squall-resume.js's
// `follow` under node, on one node's WebSocket or long-poll endpoint. Each
// publication and reset goes to stdout as a JSON line, in order:
//   {"ev": "sub"}                        the server confirmed a subscription
//   {"ev": "item", "t": DATA, "p": POSITION or null}
//   {"ev": "reset", "pos": POSITION}
//   {"ev": "error", "error": MESSAGE}   the feed stopped (not temporary)
// Usage: node --experimental-websocket chaos_client.mjs CLIENT HOST:PORT CHANNEL websocket|poll [SINCE]
// (CLIENT: the file URL of the squall-resume.mjs of the squall under test,
// which may be an installed one; SINCE: the position a page was rendered
// at, when the checker "reloads" it.)
const [client, where, channel, transport, since] = process.argv.slice(2);
const {follow} = await import(client);
const out = (fields) => process.stdout.write(JSON.stringify(fields) + '\n');
const options = {
  channel,
  since: since || null,
  websocket: null,
  eventsource: null,
  poll: null,
  window: null,
  document: null,
  minDelay: 50,
  maxDelay: 500,
  connectTimeout: 3000,
  heartbeatGrace: 2000,
  onmessage(data, position) { out({ev: 'item', t: data, p: position}); },
  onreset(position) { out({ev: 'reset', pos: position}); },
  onstate(state) { if (state === 'open') out({ev: 'sub'}); },
  onerror(error) { if (!error.temporary) out({ev: 'error', error: String(error.message)}); },
};
if (transport === 'websocket') options.websocket = `ws://${where}/ws`;
else options.poll = `http://${where}/poll/${channel}`;
follow(options);
out({ev: 'ready'});

// Reconnections in 10 minutes against a server that accepts each WebSocket
// and closes it at once (a crash loop, a draining node, a relay answering
// 1013), on a simulated clock: no time passes, no socket is opened.
//
//   node bench/flapping.mjs [SCRIPT ...]
//
// Each SCRIPT is the classic script of the client (default: this
// package's squall-resume.js; give an older one to compare, e.g. from
// `git show REV:squall/resume/squall-resume.js`). Prints, per script, the
// connections made in each of 5 runs (random seeds 1-5) and their median.
import {readFileSync} from 'node:fs';
import {fileURLToPath} from 'node:url';
import vm from 'node:vm';
import {seededRandom} from '../test/fakes.mjs';

const MINUTES = 10;
const CLOSE_AFTER = 20;  // ms between the socket's open and its close

function simulate(source, seed) {
  let now = 0;
  let next = 1;
  const timers = new Map();
  let connections = 0;
  const later = (fn, ms) => { const id = next++; timers.set(id, {at: now + Math.max(0, ms || 0), fn}); return id; };
  class FlappingSocket {
    constructor() {
      connections += 1;
      later(() => this.onopen && this.onopen({}), 1);
      later(() => this.onclose && this.onclose({code: 1013}), 1 + CLOSE_AFTER);
    }
    send() {}
    close() { this.onclose = null; }
  }
  const math = Object.create(Math);
  math.random = seededRandom(seed);
  const context = vm.createContext({
    setTimeout: later,
    clearTimeout: (id) => timers.delete(id),
    Date: {now: () => now},
    Math: math,
    WebSocket: FlappingSocket,
    location: {protocol: 'http:', host: '127.0.0.1'},
    JSON, Object, Error, String, Number, Array, TypeError,
  });
  vm.runInContext(source, context);
  context.SquallResume.follow({channel: 'room:a', websocket: '/live'});
  const end = MINUTES * 60 * 1000;
  while (timers.size) {
    let first = null;
    for (const [id, timer] of timers) if (!first || timer.at < first[1].at) first = [id, timer];
    if (first[1].at > end) break;
    timers.delete(first[0]);
    now = first[1].at;
    first[1].fn();
  }
  return connections;
}

const scripts = process.argv.slice(2);
if (!scripts.length) scripts.push(fileURLToPath(new URL('../squall-resume.js', import.meta.url)));
for (const path of scripts) {
  const source = readFileSync(path, 'utf8');
  const counts = [1, 2, 3, 4, 5].map((seed) => simulate(source, seed));
  const median = [...counts].sort((a, b) => a - b)[2];
  console.log(`${path}: ${counts.join(', ')} connections in ${MINUTES} minutes (median ${median})`);
}

"""Differential run of HTTP/1.1 parsers on one corpus.

Peers for request streams:

* squall-python, squall-httptools: Squall's sans-I/O core, both backends,
  strict defaults (the reference is squall-python);
* h11 and httptools (llhttp) driven directly;
* tornado: Tornado's HTTPServer over loopback, run by ``server_peer.py`` in
  a virtualenv that has Tornado (``--tornado-python``; skipped if absent);
* squall-server: Squall's HTTPServer over loopback, the same way (its own
  connection code above the core: the bare-LF fallback, Host checks).

Responses (client role): Squall's core (both backends), h11, httptools.

The corpus is corpus.py's seeds, grown with Hypothesis for a bounded time
(mutations and splices of the seeds, kept when they show a new combination
of outcomes). Each disagreement with Squall is classified:

* ``accepts``: Squall accepts a request that the peer refuses;
* ``refuses``: Squall refuses where the peer accepts;
* ``split``: the stream is split into different requests (or the same
  request has a different target, headers or body);
* ``waits``: nothing different was accepted, but Squall waits for more
  where the peer has already refused.

Every ``accepts`` and ``split`` must be fixed in squall/_h1 or justified in
tests/COMPAT.md; ``--known`` lists the justified ones (by case name and
peer) so that the run fails only on new findings.

Usage: python compat/differential/run.py [--grow-seconds 60] [--tornado-python PATH]
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from core_peers import REQUEST_PEERS, RESPONSE_PEERS, Result  # noqa: E402
from corpus import request_seeds, response_seeds  # noqa: E402

REF = "squall-python"
# Peers that are not Squall: their accepts/splits need a fix or a reason.
EXTERNAL = ("h11", "httptools", "tornado")
CATEGORIES = ["accepts", "refuses", "split", "waits"]
NASTY = [
    b"\r",
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b"\x00",
    b"\x0b",
    b"\x7f",
    b"\xff",
    b":",
    b";",
    b",",
    b"0",
    b"x",
    b"-",
    b"+",
    b'"',
    b"\r\n ",
    b"\r\n\r\n",
    b"chunked",
    b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"0\r\n\r\n",
    b"GET / HTTP/1.1\r\n",
]


def _canon_headers(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    # Peers rewrite some framing fields: h11 and Tornado fold identical
    # Content-Length values ("5, 5", or two fields) into one, h11 lowercases
    # Transfer-Encoding. Compare those fields in that one form.
    cls = [v for n, v in headers if n == "content-length"]
    items = {i.strip(" \t") for v in cls for i in v.split(",")}
    out = [(n, v) for n, v in headers if n != "content-length"]
    if cls:
        out += (
            [("content-length", items.pop())]
            if len(items) == 1
            else [("content-length", v) for v in cls]
        )
    out = [(n, v.lower() if n == "transfer-encoding" else v) for n, v in out]
    out.sort(key=lambda p: p[0])
    return tuple(out)


def canon(r: Result) -> Result:
    msgs, end = r
    fixed = []
    for m in msgs:
        if len(m) == 5:
            fixed.append((m[0], m[1], m[2], _canon_headers(m[3]), m[4]))
        else:
            fixed.append((m[0], _canon_headers(m[1]), m[2]))
    return tuple(fixed), end


def classify(s: Result, p: Result) -> str | None:
    """Place peer result ``p`` against Squall's ``s`` (None: they agree)."""
    sm, se = canon(s)
    pm, pe = canon(p)
    if len(sm) < len(pm) and sm == pm[: len(sm)] and se == "closed":
        # Squall stopped at a "close" (RFC 9112 §9.6: nothing after it is
        # processed) where the peer read on.
        return "refuses"
    # "closed" is a clean stop, like a stream that simply ended.
    se = "open" if se == "closed" else se
    pe = "open" if pe == "closed" else pe
    if pe == "upgrade":
        # The peer stopped at an upgrade or CONNECT: compare up to there.
        if sm[: len(pm)] == pm:
            return None
        return "refuses" if se == "refused" and sm == pm[: len(sm)] else "split"
    if sm == pm:
        if se == pe:
            return None
        return "waits" if se == "open" else "refuses"
    k = 0
    while k < min(len(sm), len(pm)) and sm[k] == pm[k]:
        k += 1
    if k == len(pm) and pe == "refused":
        return "accepts"
    if k == len(sm) and se == "refused":
        return "refuses"
    return "split"


def _until_close(r: Result) -> bool:
    # A final response without Content-Length or Transfer-Encoding.
    return any(
        m[0] >= 200
        and m[0] not in (204, 304)
        and not any(n in ("content-length", "transfer-encoding") for n, _ in m[1])
        for m in r[0]
    )


def run_core_requests(data: bytes) -> dict[str, Result]:
    out = {}
    for name, fn in REQUEST_PEERS.items():
        try:
            out[name] = fn(data)
        except Exception as exc:  # a crash is a finding of its own
            out[name] = ((), f"crash: {type(exc).__name__}: {exc}")
    return out


def run_core_responses(method: str, data: bytes) -> dict[str, Result]:
    out = {}
    for name, fn in RESPONSE_PEERS.items():
        if name == "httptools" and method in ("HEAD", "CONNECT"):
            continue  # llhttp cannot be told the request's method
        try:
            out[name] = fn(method, data)
        except Exception as exc:
            out[name] = ((), f"crash: {type(exc).__name__}: {exc}")
    return out


def from_server(res: dict[str, Any]) -> Result:
    msgs = tuple(
        (m, t, v, tuple((k, val) for k, val in sorted(h, key=lambda p: p[0])), base64.b64decode(b))
        for m, t, v, h, b in res["msgs"]
    )
    return msgs, res["end"]


def run_server_peer(python: str, impl: str, cases: list[bytes]) -> list[Result]:
    payload = json.dumps([base64.b64encode(c).decode() for c in cases])
    proc = subprocess.run(
        [python, str(HERE / "server_peer.py"), impl],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parents[1])},
    )
    return [from_server(r) for r in json.loads(proc.stdout)]


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    data = bytearray(rng.choice(seeds))
    if rng.random() < 0.15:
        other = rng.choice(seeds)
        cut = rng.randrange(len(data) + 1)
        data = data[:cut] + other[rng.randrange(len(other) + 1) :]
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(data) + 1)
        r = rng.random()
        if r < 0.4:
            data[pos:pos] = rng.choice(NASTY)
        elif r < 0.7:
            data[pos : pos + 1] = rng.choice(NASTY)
        elif r < 0.85:
            del data[pos : pos + rng.randint(1, 4)]
        else:
            data[pos:pos] = bytes([rng.randrange(256)])
    return bytes(data)


def signature(results: dict[str, Result]) -> tuple[Any, ...]:
    ref = results[REF]
    return tuple((name, classify(ref, r), r[1], len(r[0])) for name, r in sorted(results.items()))


def grow(seeds: list[bytes], seconds: float, seed: int) -> list[tuple[str, bytes]]:
    """Mutants of the seeds that show a new combination of outcomes.

    Hypothesis drives the choice of mutations (its engine explores the
    strategy space); each generated input is classified at once with the
    in-process peers, and kept if its signature is new.
    """
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    kept: list[tuple[str, bytes]] = []
    seen: collections.Counter[tuple[Any, ...]] = collections.Counter()
    deadline = time.monotonic() + seconds
    tried = [0]

    class _Done(Exception):
        pass

    @settings(
        max_examples=10_000_000,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.integers(0, 2**32 - 1))
    def explore(n: int) -> None:
        if time.monotonic() > deadline:
            raise _Done
        tried[0] += 1
        rng = random.Random(n ^ seed)
        data = mutate(rng, seeds)
        results = run_core_requests(data)
        sig = signature(results)
        worth = any(c in ("accepts", "split") for _, c, _, _ in sig)
        if seen[sig] < (3 if worth else 1):
            seen[sig] += 1
            kept.append((f"mutant-{len(kept)}", data))

    try:
        explore()
    except _Done:
        pass
    print(f"grow: {tried[0]} mutants tried in {seconds:.0f}s, {len(kept)} kept", flush=True)
    return kept


def render(data: bytes, limit: int = 160) -> str:
    text = repr(data)
    return text if len(text) <= limit else text[:limit] + f"... ({len(data)} bytes)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grow-seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tornado-python", default=os.environ.get("TORNADO_PYTHON", ""))
    ap.add_argument("--known", default=str(HERE / "known.json"))
    ap.add_argument("--report", default=str(HERE / "reports" / "report.json"))
    args = ap.parse_args()

    t0 = time.monotonic()
    seeds = request_seeds()
    cases = seeds + grow([d for _, d in seeds], args.grow_seconds, args.seed)
    results: dict[str, dict[str, Result]] = {}
    for name, data in cases:
        results[name] = run_core_requests(data)
    datas = [d for _, d in cases]
    server_peers = [("squall-server", sys.executable, "squall")]
    if args.tornado_python and Path(args.tornado_python).exists():
        server_peers.append(("tornado", args.tornado_python, "tornado"))
    else:
        print("tornado: no --tornado-python given; that peer is skipped", flush=True)
    for label, python, impl in server_peers:
        for (name, _), res in zip(cases, run_server_peer(python, impl, datas), strict=True):
            results[name][label] = res

    known = json.loads(Path(args.known).read_text()) if Path(args.known).exists() else {}
    table: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    findings: list[dict[str, Any]] = []
    new_findings = 0
    crashes = 0
    by_name = dict(cases)
    for name, res in results.items():
        ref = res[REF]
        for peer, r in res.items():
            if r[1].startswith("crash"):
                crashes += 1
                findings.append({"case": name, "peer": peer, "kind": "crash", "detail": r[1]})
                continue
            if peer == REF:
                continue
            c = classify(ref, r)
            if c is None:
                continue
            table[peer][c] += 1
            reason = known.get(f"{peer}:{name}") or known.get(f"*:{name}")
            if peer == "squall-httptools" or (
                peer in EXTERNAL
                and c in ("accepts", "split")
                and reason is None
                and not name.startswith("mutant")
            ):
                new_findings += 1
            findings.append(
                {
                    "case": name,
                    "peer": peer,
                    "kind": c,
                    "known": reason,
                    "input": render(by_name[name]),
                    "squall": repr(ref)[:400],
                    "other": repr(r)[:400],
                }
            )
    # Squall's own server against Tornado's: the deployed comparison.
    if "tornado" in next(iter(results.values()), {}):
        for name, res in results.items():
            c = classify(res["squall-server"], res["tornado"])
            if c is not None:
                table["tornado vs squall-server"][c] += 1
                reason = known.get(f"tornado vs squall-server:{name}") or known.get(f"*:{name}")
                if c in ("accepts", "split") and reason is None and not name.startswith("mutant"):
                    new_findings += 1
                findings.append(
                    {
                        "case": name,
                        "peer": "tornado vs squall-server",
                        "kind": c,
                        "known": reason,
                        "input": render(by_name[name]),
                        "squall": repr(res["squall-server"])[:400],
                        "other": repr(res["tornado"])[:400],
                    }
                )

    # Responses, client role.
    rtable: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    rcases = response_seeds()
    rng = random.Random(args.seed)
    rseeds = [(m, d) for _, m, d in rcases]
    grown = 0
    stop = time.monotonic() + args.grow_seconds / 4
    rall = [(n, m, d) for n, m, d in rcases]
    rseen: collections.Counter[tuple[Any, ...]] = collections.Counter()
    tried = 0
    while time.monotonic() < stop:
        m, _ = rng.choice(rseeds)
        data = mutate(rng, [d for mm, d in rseeds if mm == m])
        tried += 1
        sig = signature(run_core_responses(m, data))
        worth = any(c in ("accepts", "split") for _, c, _, _ in sig)
        if rseen[sig] < (3 if worth else 1):
            rseen[sig] += 1
            rall.append((f"rmutant-{grown}", m, data))
            grown += 1
    print(f"grow responses: {tried} mutants tried, {grown} kept", flush=True)
    for name, method, data in rall:
        res = run_core_responses(method, data)
        ref = res[REF]
        for peer, r in res.items():
            if r[1].startswith("crash"):
                crashes += 1
                findings.append({"case": name, "peer": peer, "kind": "crash", "detail": r[1]})
                continue
            if peer == REF:
                continue
            if peer == "httptools" and _until_close(ref):
                continue  # llhttp is never told of the EOF that ends such a body
            c = classify(ref, r)
            if c is None:
                continue
            rtable[peer][c] += 1
            reason = known.get(f"response:{peer}:{name}") or known.get(f"response:*:{name}")
            if peer == "squall-httptools" or (
                c in ("accepts", "split") and reason is None and not name.startswith("rmutant")
            ):
                new_findings += 1
            findings.append(
                {
                    "case": f"response:{name}",
                    "peer": peer,
                    "kind": c,
                    "known": reason,
                    "input": f"{method} " + render(data),
                    "squall": repr(ref)[:400],
                    "other": repr(r)[:400],
                }
            )

    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(findings, indent=1))

    print()
    print(f"requests: {len(cases)} cases ({len(seeds)} seeds + {len(cases) - len(seeds)} grown)")
    print(f"{'peer':<26}" + "".join(f"{c:>10}" for c in CATEGORIES))
    for peer in [
        "squall-httptools",
        "h11",
        "httptools",
        "tornado",
        "squall-server",
        "tornado vs squall-server",
    ]:
        if peer in table or any(peer in r for r in results.values()):
            print(f"{peer:<26}" + "".join(f"{table[peer][c]:>10}" for c in CATEGORIES))
    print(f"responses: {len(rall)} cases ({len(rcases)} seeds + {grown} mutants)")
    for peer in ["squall-httptools", "h11", "httptools"]:
        print(f"{peer:<26}" + "".join(f"{rtable[peer][c]:>10}" for c in CATEGORIES))
    print(f"crashes: {crashes}; unexplained accepts/splits: {new_findings}")
    print(f"report: {report} ({time.monotonic() - t0:.0f}s)")
    sys.exit(1 if crashes or new_findings else 0)


if __name__ == "__main__":
    main()

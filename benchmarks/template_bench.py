"""The templated page of ``run.py page``, rendered in-process, without a server.

Renders benchmarks/servers/templates/page.html (and page.jinja2, its jinja2
twin) with the same variables the servers pass, for each contender:

* ``squall``: `squall.template.Loader(...).load("page.html").generate(...)`;
* ``squall-web``: the same through ``RequestHandler.render_string`` (the
  handler's template namespace: locale, current user, UI modules...), as the
  page scenario's handler does, request and handler objects included;
* ``tornado``: Tornado's template module, when importable;
* ``jinja2``: jinja2 with autoescape, as aiohttp_jinja2 sets it up, the
  result encoded as UTF-8 (what the aiohttp response then sends).

The query string varies across renders (plain words, and words with
characters to escape), like the page scenario's varied requests.

Two measures:

* default: renders per second, contenders alternated over ``--rounds``
  rounds of ``-n`` renders each; the median per contender and the median of
  the per-round ratios to jinja2 are printed. Pin it (``taskset -c 1``).
* ``--callgrind``: instructions per render, counted by ``valgrind
  --tool=callgrind`` (run A renders FIRST pages, run B FIRST + n; the
  difference over n is the cost of one render, start-up cancelled), which
  does not move with the machine's load. Needs valgrind and gcc (see
  benchmarks/_probe.py).

Usage: python benchmarks/template_bench.py [--callgrind] [-n N] [--rounds R]
       [--contender NAME ...]
The peers come from .venv-bench (``make bench`` builds it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "servers"))

from _page import ITEMS, TEMPLATES, TITLE  # noqa: E402

CONTENDERS = ["squall", "squall-web", "tornado", "jinja2"]
QUERIES = ["python", "squall <async>", "weather & recipes", "laptop", 'say "hi"', "tornado's"]
FIRST = 200  # renders in callgrind's short run


def _squall() -> Callable[[str, str], bytes]:
    from squall.template import Loader

    template = Loader(TEMPLATES).load("page.html")

    def render(query: str, page: str) -> bytes:
        return template.generate(title=TITLE, query=query, page=page, items=ITEMS)

    return render


def _squall_web() -> Callable[[str, str], bytes]:
    import squall.web
    from squall.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

    class Connection:
        """Just enough of a connection for a handler that is never finished."""

        def set_close_callback(self, callback: Any) -> None:
            pass

    class Page(squall.web.RequestHandler):
        pass

    app = squall.web.Application([("/page", Page)], template_path=TEMPLATES)
    headers = HTTPHeaders({"Host": "bench", "Accept-Language": "en-US,en;q=0.8"})

    def render(query: str, page: str) -> bytes:
        request = HTTPServerRequest(
            start_line=RequestStartLine("GET", "/page", "HTTP/1.1"),
            headers=headers,
            connection=Connection(),
        )
        handler = Page(app, request)
        out = handler.render_string("page.html", title=TITLE, query=query, page=page, items=ITEMS)
        # What finish() does after render(): the handler's ui namespace
        # refers back to it, and left in place the cycle waits for the GC.
        handler._break_cycles()
        return out

    return render


def _tornado() -> Callable[[str, str], bytes]:
    from tornado.template import Loader

    template = Loader(TEMPLATES).load("page.html")

    def render(query: str, page: str) -> bytes:
        out: bytes = template.generate(title=TITLE, query=query, page=page, items=ITEMS)
        return out

    return render


def _jinja2() -> Callable[[str, str], bytes]:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    template = env.get_template("page.jinja2")

    def render(query: str, page: str) -> bytes:
        context = {"title": TITLE, "query": query, "page": page, "items": ITEMS}
        return template.render(context).encode("utf-8")

    return render


BUILDERS: dict[str, Callable[[], Callable[[str, str], bytes]]] = {
    "squall": _squall,
    "squall-web": _squall_web,
    "tornado": _tornado,
    "jinja2": _jinja2,
}


def available(names: list[str]) -> dict[str, Callable[[str, str], bytes]]:
    """The renderers of the contenders that can be imported here."""
    found = {}
    for name in names:
        try:
            found[name] = BUILDERS[name]()
        except ImportError as exc:
            print(f"{name}: skipped ({exc})", file=sys.stderr)
    return found


def run(render: Callable[[str, str], bytes], count: int) -> int:
    """Render ``count`` pages with varying queries; returns the bytes produced."""
    total = 0
    queries = QUERIES
    nq = len(queries)
    for i in range(count):
        total += len(render(queries[i % nq], str(i % 7 + 1)))
    return total


def check_same(renders: dict[str, Callable[[str, str], bytes]]) -> None:
    """All Tornado-syntax contenders must produce the same bytes (jinja2 escapes quotes its way)."""
    pages = {name: r("a <b> & 'c' \"d\"", "3") for name, r in renders.items()}
    ours = {name: page for name, page in pages.items() if name != "jinja2"}
    if len(set(ours.values())) > 1:
        raise SystemExit(f"contenders disagree: {ours}")


def timed(args: argparse.Namespace) -> None:
    renders = available(args.contender)
    check_same(renders)
    for render in renders.values():
        run(render, 200)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in renders}
    names = list(renders)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.process_time()
            run(renders[name], args.n)
            rates[name].append(args.n / (time.process_time() - start))
    print(f"== renders per CPU-second, median of {args.rounds} rounds of {args.n}")
    for name in names:
        line = f"{name:12s} {statistics.median(rates[name]):10.0f}"
        if "jinja2" in rates and name != "jinja2":
            ratios = [a / b for a, b in zip(rates[name], rates["jinja2"], strict=True)]
            line += f"   x{statistics.median(ratios):.2f} jinja2"
        print(line)


def inner(cfg: dict[str, Any]) -> None:
    """Runs inside valgrind: one contender, the two measured runs."""
    import _probe

    mod = _probe.load()
    render = BUILDERS[cfg["contender"]]()
    run(render, 300)
    mod.measure_a(lambda: run(render, FIRST))
    mod.measure_b(lambda: run(render, FIRST + cfg["n"]))


def callgrind(args: argparse.Namespace) -> None:
    # Imported here: template_bench's timed mode needs nothing of it.
    from callgrind_hotpath import annotate

    print(f"== instructions per render (callgrind, {args.n} renders)")
    for name in args.contender:
        try:
            BUILDERS[name]()
        except ImportError as exc:
            print(f"{name:12s} skipped ({exc})")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "callgrind.out")
            cmd = [
                "valgrind",
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=sq_measure_*",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--inner",
                json.dumps({"contender": name, "n": args.n}),
            ]
            env = dict(os.environ, PYTHONHASHSEED="0")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"valgrind run failed:\n{proc.stderr[-3000:]}")
            incl = annotate(out, True)
        per = (incl.get("sq_measure_b", 0) - incl.get("sq_measure_a", 0)) / args.n
        print(f"{name:12s} {per:10.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--callgrind", action="store_true", help="count instructions")
    parser.add_argument("-n", type=int, default=None, help="renders per round / measured")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--contender", action="append", choices=CONTENDERS)
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(json.loads(args.inner))
        return
    args.contender = args.contender or CONTENDERS
    if args.callgrind:
        args.n = args.n or 1000
        callgrind(args)
    else:
        args.n = args.n or 5000
        timed(args)


if __name__ == "__main__":
    main()

"""Draws the C1M figure (an SVG, no plotting library) from a run's JSON.

``python benchmarks/c1m/plot.py RESULT.json [MORE.json ...] --out docs/figures/c1m.svg``
(``--markdown``: print the table of steps the guide quotes, too)

Two panels against connections held: the servers' RSS (MB; with the
kernel's slab beside it, both ends of every connection) and the broadcast
to all's p99 and the server CPU it took (s). One line per result file
(its ``kind``, and ``ping`` when pings were on).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

W, H = 360, 260  # one panel
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 30, 44
COLOURS = ("#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad", "#d68910")


def nice_max(value: float) -> float:
    for power in range(-2, 9):
        for step in (1, 2, 2.5, 5):
            top = step * 10**power
            if top >= value:
                return float(top)
    return value


def panel(
    x0: int, title: str, ylabel: str, series: list[tuple[str, str, list[tuple[float, float]]]]
) -> list[str]:
    """One panel's SVG elements: series are (label, colour, points) with x in connections."""
    xs = [x for _, _, pts in series for x, _ in pts] or [1.0]
    ys = [y for _, _, pts in series for _, y in pts] or [1.0]
    xmax = nice_max(max(xs))
    ymax = nice_max(max(ys) * 1.05)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return x0 + LEFT + pw * x / xmax

    def py(y: float) -> float:
        return TOP + ph * (1 - y / ymax)

    out = [
        f'<text x="{x0 + W / 2}" y="16" text-anchor="middle" font-weight="bold">{title}</text>',
        f'<rect x="{x0 + LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
    ]
    for i in range(5):
        yv = ymax * i / 4
        xv = xmax * i / 4
        out.append(
            f'<line x1="{x0 + LEFT}" x2="{x0 + LEFT + pw}" y1="{py(yv):.1f}" y2="{py(yv):.1f}" '
            'stroke="#eee"/>'
        )
        out.append(
            f'<text x="{x0 + LEFT - 4}" y="{py(yv) + 4:.1f}" text-anchor="end">{yv:g}</text>'
        )
        out.append(
            f'<text x="{px(xv):.1f}" y="{TOP + ph + 14}" text-anchor="middle">{xv / 1000:g}k</text>'
        )
    out.append(
        f'<text x="{x0 + LEFT + pw / 2}" y="{H - 8}" text-anchor="middle">connections held</text>'
    )
    out.append(
        f'<text x="{x0 + 14}" y="{TOP + ph / 2}" text-anchor="middle" '
        f'transform="rotate(-90 {x0 + 14} {TOP + ph / 2})">{ylabel}</text>'
    )
    for k, (label, colour, pts) in enumerate(series):
        if not pts:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        dash = ' stroke-dasharray="5 3"' if label.endswith("(dashed)") else ""
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        out.append(
            f'<text x="{x0 + LEFT + 6}" y="{TOP + 14 + 14 * k}" fill="{colour}">'
            f"{label.replace(' (dashed)', '')}</text>"
        )
    return out


def measured(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in result["steps"] if "all" in s]


def markdown(result: dict[str, Any]) -> str:
    """The table of steps of one run."""
    head = (
        "| held | open (s) | server CPU per open (µs) | server RSS per conn (B) "
        "| kernel slab per conn, both ends (B) | idle CPU (% of a core) "
        "| to each channel p50 / p99 / max (s) | to all p50 / p99 / max (s) "
        "| server CPU for all (s) | lost | storm (10%) (s) | gc passes gen 2 (open / idle / bc) "
        "| MemAvailable (GiB) | load |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in result["steps"]:
        if "all" not in s:
            lines.append(f"| {s['held']:,} | {s['open_s']} | (stopped before measuring) |")
            continue
        c, a = s["channels"], s["all"]

        def three(d: dict[str, Any]) -> str:
            return f"{d['p50_ms'] / 1000:.1f} / {d['p99_ms'] / 1000:.1f} / {d['max_ms'] / 1000:.1f}"

        lines.append(
            f"| {s['held']:,} | {s['open_s']} | {s['server_cpu_per_open_us']} "
            f"| {s['server_rss_per_conn']:,} | {s['slab_per_conn_both_ends']:,} "
            f"| {s['idle_cpu_pct']} | {three(c)} | {three(a)} | {a['server_cpu_s']} "
            f"| {c['lost'] + a['lost']} | {s['storm']['secs']:.1f} "
            f"| {s['open_gc']['passes'][2]} / {s['idle_gc']['passes'][2]} / {a['gc']['passes'][2]} "
            f"| {s['mem_available_gib']} | {s['load_idle']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rss: list[tuple[str, str, list[tuple[float, float]]]] = []
    p99: list[tuple[str, str, list[tuple[float, float]]]] = []
    for i, path in enumerate(args.results):
        result = json.loads(path.read_text())
        name = result["kind"] + (f", pings {result['ping']:g} s" if result.get("ping") else "")
        colour = COLOURS[i % len(COLOURS)]
        steps = measured(result)
        rss.append(
            (f"{name}: server RSS", colour, [(s["held"], s["server_rss_mb"]) for s in steps])
        )
        rss.append(
            (
                f"{name}: kernel slab, both ends (dashed)",
                colour,
                [(s["held"], s["slab_per_conn_both_ends"] * s["held"] / 2**20) for s in steps],
            )
        )
        p99.append(
            (f"{name}: p99", colour, [(s["held"], s["all"]["p99_ms"] / 1000) for s in steps])
        )
        p99.append(
            (
                f"{name}: server CPU (dashed)",
                colour,
                [(s["held"], s["all"]["server_cpu_s"]) for s in steps],
            )
        )
    body = panel(0, "Memory", "MB", rss) + panel(W, "Broadcast to all", "seconds", p99)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" '
        f'viewBox="0 0 {2 * W} {H}" font-family="sans-serif" font-size="11">'
        '<rect width="100%" height="100%" fill="white"/>' + "".join(body) + "</svg>\n"
    )
    args.out.write_text(svg)
    if args.markdown:
        for path in args.results:
            print(path, "\n" + markdown(json.loads(path.read_text())) + "\n")


if __name__ == "__main__":
    main()

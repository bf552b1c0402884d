"""How many times the chart's arrows cross, measured on the layout Graphviz drew.

    from rxwatch.render.crossings import crossings, layout_json
    n = crossings(layout_json(dot_source))     # `dot -Tjson` on the chart's DOT text

Graphviz's JSON output (`dot -Tjson`) gives every drawn edge as B-spline control points (its
`_draw_` operations of kind `b`). Each spline is approximated by a polyline (every cubic piece
sampled at SAMPLES points), and every pair of edges is checked segment by segment: each point
where two polylines properly cross counts once. Not counted: invisible edges (the ones that
order the rows), edges drawn with no spline, and two edges touching where they share an end
(two arrows leaving the same rule, or arriving at the same point of a box). Two crossings of
the same pair of edges closer than MERGE points are one: nearly parallel arrows wobbling
around each other cross once to the eye.
"""

from __future__ import annotations

import json
import math
import subprocess

SAMPLES = 12  # points per cubic Bézier piece of a spline
MERGE = 3.0  # points: crossings of the same pair of edges closer than this are one
TOUCH = 2.0  # points: a meeting this close to an end both edges share is a touch, not a crossing

Point = tuple[float, float]


def bezier(points: list[Point], samples: int = SAMPLES) -> list[Point]:
    """A piecewise cubic Bézier (1 + 3k control points, as Graphviz writes splines) as a polyline."""
    out: list[Point] = [tuple(points[0])]
    for i in range(0, len(points) - 3, 3):
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points[i : i + 4]
        for s in range(1, samples + 1):
            t = s / samples
            a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t**3
            out.append((a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3))
    return out


def edge_polylines(layout: dict) -> list[list[Point]]:
    """Each drawn, visible edge of a `dot -Tjson` layout as a polyline (in points)."""
    out = []
    for e in layout.get("edges") or ():
        if "invis" in str(e.get("style") or ""):
            continue
        line: list[Point] = []
        for op in e.get("_draw_") or ():
            if op.get("op") in ("b", "B") and len(op.get("points") or ()) >= 4:
                line.extend(bezier([tuple(p) for p in op["points"]]))
        if len(line) >= 2:
            out.append(line)
    return out


def _cross(p: Point, p2: Point, q: Point, q2: Point) -> Point | None:
    """Where segment p-p2 properly crosses segment q-q2 (half-open at their far ends, so a
    crossing at a shared vertex of a polyline counts once), or None."""
    rx, ry = p2[0] - p[0], p2[1] - p[1]
    sx, sy = q2[0] - q[0], q2[1] - q[1]
    den = rx * sy - ry * sx
    if abs(den) < 1e-12:  # parallel (or collinear: running along each other is no crossing)
        return None
    qpx, qpy = q[0] - p[0], q[1] - p[1]
    t = (qpx * sy - qpy * sx) / den
    u = (qpx * ry - qpy * rx) / den
    if 0 <= t < 1 and 0 <= u < 1:
        return (p[0] + t * rx, p[1] + t * ry)
    return None


def _box(line: list[Point]) -> tuple[float, float, float, float]:
    xs = [x for x, _ in line]
    ys = [y for _, y in line]
    return min(xs), min(ys), max(xs), max(ys)


def pair_crossings(a: list[Point], b: list[Point]) -> list[Point]:
    """The points where polylines `a` and `b` cross (merged within MERGE points; touches at an
    end both share left out)."""
    ax0, ay0, ax1, ay1 = _box(a)
    bx0, by0, bx1, by1 = _box(b)
    if ax1 < bx0 or bx1 < ax0 or ay1 < by0 or by1 < ay0:
        return []
    shared = [e for e in (a[0], a[-1]) if any(math.dist(e, f) <= TOUCH for f in (b[0], b[-1]))]
    found: list[Point] = []
    for i in range(len(a) - 1):
        p, p2 = a[i], a[i + 1]
        lo_x, hi_x = min(p[0], p2[0]), max(p[0], p2[0])
        lo_y, hi_y = min(p[1], p2[1]), max(p[1], p2[1])
        if hi_x < bx0 or bx1 < lo_x or hi_y < by0 or by1 < lo_y:
            continue
        for j in range(len(b) - 1):
            q, q2 = b[j], b[j + 1]
            if max(q[0], q2[0]) < lo_x or hi_x < min(q[0], q2[0]) or max(q[1], q2[1]) < lo_y or hi_y < min(q[1], q2[1]):
                continue
            x = _cross(p, p2, q, q2)
            if x is None or any(math.dist(x, s) <= TOUCH for s in shared):
                continue
            if all(math.dist(x, f) > MERGE for f in found):
                found.append(x)
    return found


def count(lines: list[list[Point]]) -> int:
    """The crossings of these polylines, pair by pair."""
    return sum(len(pair_crossings(lines[i], lines[j])) for i in range(len(lines)) for j in range(i + 1, len(lines)))


def crossings(layout: dict | str) -> int:
    """The edge crossings of a laid-out chart: `layout` is `dot -Tjson` output (parsed or text)."""
    if isinstance(layout, (str, bytes)):
        layout = json.loads(layout)
    return count(edge_polylines(layout))


def layout_json(dot_source: str) -> dict:
    """Graphviz's layout of a DOT text, as `dot -Tjson` writes it (needs `dot` on PATH)."""
    proc = subprocess.run(["dot", "-Tjson"], input=dot_source.encode("utf-8"), capture_output=True, check=True)
    return json.loads(proc.stdout)

"""The patient's lab chart as inline SVG for the viewer, drawn from render.labchart's Chart.

Drawn directly rather than taken from matplotlib's SVG output: the viewer needs a small,
self-contained element (no fonts, no scripts, text as text) with an id on every result and a
hover box that CSS alone shows (`#lc-p3:hover ~ #lc-t3`), which the page's Content-Security-
Policy allows without any script; `rxwatch render` stays free of matplotlib's import. What is
shown (rows, bands, points and their texts, windows, markers, the ribbon, the legend) is the
Chart's: this module only places it.
"""

from __future__ import annotations

import datetime
import math
from html import escape

from .labchart import (LAB_COLOURS, OVERDUE_COLOUR, STATUS_COLOURS, STATUS_TEXT, WINDOW_COLOUR, ZONE_COLOURS, Chart,
                       _short, band_labels, marker_lanes, overdue_labelled, tick_text, y_ticks, zones)

W = 1200
LEFT = 170
RIGHT = 96
ROW = 76
LANE = 18
LABEL = 15
GAP = 5
FONT = 11
DODGE = 5.0  # px between the points of two labs of a row on one day
CHAR = 6.1  # px per character of the 11px sans-serif text, roughly


def _e(text: str) -> str:
    return escape(str(text), quote=True)


def fragment(chart: Chart) -> str:
    """The `<details id="labchart">` element holding the chart's SVG."""
    summary = f"Lab chart: {_e(chart.title)} ({len(chart.points):,} results)"
    return (f'<details id="labchart" open style="flex:none;max-height:60vh;overflow:auto;border-bottom:1px solid #ccc;'
            f'padding:0 12px;background:#fff"><summary style="cursor:pointer;padding:4px 0;color:#333">{summary}</summary>\n'
            f"{svg(chart)}\n</details>")


def svg(chart: Chart) -> str:
    span = max((chart.end - chart.start).days, 1)
    plot_w = W - LEFT - RIGHT
    px_day = plot_w / span

    def X(day: datetime.date) -> float:
        return round(LEFT + (day - chart.start).days * px_day, 1)

    out: list[str] = []
    tips: list[str] = []
    css: list[str] = []
    y = 6
    label_rows = marker_lanes(chart, 1 / (CHAR / px_day)) if chart.markers else []
    n_labels = max((r for r, _ in label_rows), default=-1) + 1
    # the protocol lane
    lane_h = LABEL * max(n_labels, 1) + 4
    out.append(_name(y + lane_h / 2, "protocol"))
    for m, (r, flip) in zip(chart.markers, label_rows):
        cy = y + r * LABEL + LABEL / 2 + 2
        cls = "lc-tr" if m.kind == "transition" else "lc-act"
        x = X(m.date)
        shape = (f'<path d="M{x - 4},{cy - 4}h8l-4,7z"/>' if m.kind == "transition" else f'<circle cx="{x}" cy="{cy}" r="3"/>')
        out.append(f'<g class="{cls}"><title>{_e(m.date.isoformat() + ": " + m.detail + " — " + m.text)}</title>{shape}'
                   f'<text x="{x - 7 if flip else x + 7}" y="{cy + 4}" text-anchor="{"end" if flip else "start"}">'
                   f'{_e(_short(m.text))}</text></g>')
    y += lane_h + GAP
    grid_top = y
    # the drug ribbon
    for drug in chart.drugs:
        out.append(_name(y + LANE / 2, drug))
        for s in chart.segments:
            if s.drug != drug:
                continue
            x0, x1 = X(s.start), X(s.end)
            fill = "url(#lc-dots)" if s.status == "reduced" else STATUS_COLOURS[s.status]
            width = x1 - x0
            shown = s.text if width > (len(s.text) + 2) * CHAR else STATUS_TEXT[s.status] if width > (len(s.status) + 1) * CHAR else ""
            out.append(f'<g class="lc-seg lc-{s.status}"><title>{_e(f"{drug} {s.text} from {s.start.isoformat()}")}</title>'
                       f'<rect x="{x0}" y="{y + 2}" width="{round(width, 1)}" height="{LANE - 4}" fill="{fill}" stroke="#fff"/>'
                       + (f'<text x="{x0 + 5}" y="{y + LANE / 2 + 4}">{_e(shown)}</text>' if shown else "") + "</g>")
        y += LANE + GAP
    rows_top = y
    # the lab rows
    points_svg: list[str] = []
    for i, row in enumerate(chart.rows):
        top, bottom = y, y + ROW
        lo, hi = math.log(row.lo), math.log(row.hi)

        def Y(v: float, top=top, lo=lo, hi=hi) -> float:
            return round(top + (hi - math.log(max(v, 1e-12))) / (hi - lo) * ROW, 1)

        for z_lo, z_hi, level in zones(row):
            y0, y1 = Y(z_hi), Y(z_lo)
            out.append(f'<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{round(y1 - y0, 1)}" '
                       f'fill="{ZONE_COLOURS[min(level, len(ZONE_COLOURS)) - 1]}"/>')
        labelled = band_labels(row, ROW, 11)
        for i, b in enumerate(row.bands):
            by = Y(b.value)
            rules = b.rules[:4] + ([f"and {len(b.rules) - 4:,} more"] if len(b.rules) > 4 else [])
            out.append(f'<g class="lc-band"><title>{_e(b.label + ": " + "; ".join(rules))}</title>'
                       f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{by}" y2="{by}" stroke="{"#b06a00" if b.level else "#999"}"/>'
                       + (f'<text x="{LEFT + plot_w + 5}" y="{by + 4}">{_e(b.label)}</text>' if i in labelled else "") + "</g>")
        if not any(abs(b.value - 1) < 1e-12 for b in row.bands):
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{Y(1.0)}" y2="{Y(1.0)}" stroke="#555" stroke-dasharray="2 3"/>')
        for v in y_ticks(row.lo, row.hi):
            ty = Y(v)
            out.append(f'<text x="{LEFT - 5}" y="{ty + 4}" class="lc-tick" text-anchor="end">{_e(tick_text(v))}</text>'
                       f'<line x1="{LEFT - 3}" x2="{LEFT}" y1="{ty}" y2="{ty}" stroke="#333"/>')
        name = row.title + (f" × {row.limit}" if row.limit else "")
        out.append(_name((top + bottom) / 2 - (7 if row.limit else 0), row.title))
        if row.limit:
            out.append(_name((top + bottom) / 2 + 8, f"× {row.limit}"))
        out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{ROW}" fill="none" stroke="#333" '
                   f'aria-label="{_e(name)}"/>')
        for k, lab in enumerate(row.labs):
            pts = chart.lab_points(lab)
            colour = chart.lab_colours.get(lab, LAB_COLOURS[0])
            # labs sharing a row are set a little apart, so that every point of a day can be pointed at
            dodge = round(DODGE * (k - (len(row.labs) - 1) / 2), 1)
            if len(pts) > 1:
                coords = " ".join(f"{X(p.date) + dodge},{Y(p.multiple) if not p.floor else bottom - 3}" for p in pts)
                out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.3" opacity="0.75"/>')
            for p in pts:
                px, py = X(p.date) + dodge, (Y(p.multiple) if not p.floor else bottom - 3)
                lines = [p.text] + p.rules
                points_svg.append(f'<g class="lc-pt" id="{p.id}" tabindex="0" data-lab="{_e(lab)}" data-date="{p.date.isoformat()}">'
                                  f'<title>{_e(chr(10).join(lines))}</title>'
                                  f'<circle cx="{px}" cy="{py}" r="3.6" fill="{"#fff" if p.floor else colour}" stroke="{colour}"/></g>')
                tips.append(_tip(p.id, px, py, lines, rows_top, W))
                css.append(f"#{p.id}:hover~#{p.id}-tip,#{p.id}:focus~#{p.id}-tip")
        if len(row.labs) > 1:
            lx = LEFT + 6
            for lab in row.labs:
                out.append(f'<circle cx="{lx + 4}" cy="{top + 10}" r="4" fill="{chart.lab_colours[lab]}"/>'
                           f'<text x="{lx + 11}" y="{top + 14}" class="lc-key">{_e(lab)}</text>')
                lx += 22 + len(lab) * CHAR
        y = bottom + GAP
    if not chart.rows:
        out.append(f'<text x="{LEFT + plot_w / 2}" y="{y + 20}" text-anchor="middle" class="lc-note">no lab results in this trace</text>')
        y += 36
    rows_bottom = y - GAP
    for m in chart.markers:
        if m.kind == "transition" and chart.rows:
            out.append(f'<line x1="{X(m.date)}" x2="{X(m.date)}" y1="{rows_top}" y2="{rows_bottom}" class="lc-vline"/>')
    # the order lanes
    for order in chart.orders:
        labelled = overdue_labelled(chart, order, px_day / CHAR)
        out.append(_name(y + LANE / 2, chart.order_labels.get(order, order)))
        for w in chart.windows:
            if w.order != order:
                continue
            x0, x1 = max(X(w.opens), LEFT), min(X(w.due + datetime.timedelta(days=1)), LEFT + plot_w)  # within the chart's days
            if x1 <= x0:
                continue
            title = f"{w.description}: due {w.opens.isoformat()} to {w.due.isoformat()} (ordered {w.ordered.isoformat()})"
            if w.overdue:
                title += f"; overdue on {w.overdue.isoformat()}"
                if w.reminders:
                    title += ", still overdue on " + ", ".join(d.isoformat() for d in w.reminders)
                still = (f'<line x1="{X(w.overdue)}" x2="{X(w.reminders[-1])}" y1="{y + LANE / 2}" y2="{y + LANE / 2}" '
                         f'stroke="{OVERDUE_COLOUR}" stroke-width="1.5"/>') if w.reminders else ""
                label = (f'<text x="{X(w.overdue) + 7}" y="{y + LANE / 2 + 4}" fill="{OVERDUE_COLOUR}">overdue</text>'
                         if id(w) in labelled else "")
                out.append(f'<g class="lc-win lc-overdue"><title>{_e(title)}</title>'
                           f'<rect x="{x0}" y="{y + 3}" width="{round(x1 - x0, 1)}" height="{LANE - 6}" fill="url(#lc-hatch)" '
                           f'stroke="{OVERDUE_COLOUR}"/>{still}'
                           f'<path d="M{X(w.overdue) - 4},{y + LANE / 2 - 4}l8,8m0,-8l-8,8" stroke="{OVERDUE_COLOUR}" stroke-width="2"/>'
                           f'{label}</g>')
            else:
                out.append(f'<g class="lc-win"><title>{_e(title)}</title><rect x="{x0}" y="{y + 3}" width="{round(x1 - x0, 1)}" '
                           f'height="{LANE - 6}" fill="{WINDOW_COLOUR}" stroke="#6f86ad" opacity="0.8"/></g>')
        y += LANE + GAP
    # the time axis
    for day, text in _ticks(chart.start, chart.end):
        x = X(day)
        out.append(f'<line x1="{x}" x2="{x}" y1="{grid_top}" y2="{y}" class="lc-grid"/>'
                   f'<text x="{x}" y="{y + 12}" text-anchor="middle" class="lc-tick">{_e(text)}</text>')
    y += 22
    # the legend under the chart: the chart is what the eye meets first
    for line in chart.legend:
        for part in _wrap(line, int((W - 20) / (CHAR * 0.9))):
            y += 13
            out.append(f'<text x="10" y="{y}" class="lc-legend">{_e(part)}</text>')
    height = y + 8
    style = ("#labchart svg{font-family:Arial,'Liberation Sans',Helvetica,sans-serif;font-size:11px}"
             "#labchart .lc-legend{font-size:10.5px;fill:#444}#labchart .lc-name{font-size:11px;fill:#111}"
             "#labchart .lc-tick{font-size:10px;fill:#333}#labchart .lc-band text{font-size:10px;fill:#7a4a00}"
             "#labchart .lc-band line{stroke-width:0.8}#labchart .lc-tr{fill:#1f4e9e}#labchart .lc-act{fill:#555}"
             "#labchart .lc-vline{stroke:#1f4e9e;stroke-dasharray:4 3;opacity:0.55}#labchart .lc-grid{stroke:#e4e4e4}"
             "#labchart .lc-pt{cursor:pointer;outline:none}#labchart .lc-pt:hover circle,#labchart .lc-pt:focus circle{stroke:#000;"
             "stroke-width:2}#labchart .lc-tip{visibility:hidden;pointer-events:none}"
             "#labchart .lc-tip rect{fill:#fffdf4;stroke:#555}#labchart .lc-tip text{font-size:11px;fill:#111}"
             "#labchart .lc-note{fill:#777}#labchart .lc-key{font-size:10px}"
             + (",".join(css) + "{visibility:visible}" if css else ""))
    defs = ('<defs><pattern id="lc-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
            f'<rect width="6" height="6" fill="#fbe3e3"/><line x1="0" y1="0" x2="0" y2="6" stroke="{OVERDUE_COLOUR}" stroke-width="1.4"/>'
            '</pattern><pattern id="lc-dots" width="5" height="5" patternUnits="userSpaceOnUse">'
            f'<rect width="5" height="5" fill="{STATUS_COLOURS["reduced"]}"/><circle cx="2.5" cy="2.5" r="0.9" fill="#5f8f4e"/>'
            '</pattern></defs>')
    body = "\n".join(out)
    pts = "\n".join(points_svg + tips)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" id="labchart-svg" viewBox="0 0 {W} {height}" width="100%" '
            f'aria-label="{_e(chart.title)}" style="max-width:{W}px;display:block">'
            f"<style>{style}</style>{defs}\n{body}\n<g class=\"lc-points\">\n{pts}\n</g></svg>")


def _name(y: float, text: str) -> str:
    return f'<text x="{LEFT - 30}" y="{round(y + 4, 1)}" text-anchor="end" class="lc-name">{_e(_short(text, 26))}</text>'


def _tip(pid: str, px: float, py: float, lines: list[str], top: float, width: float) -> str:
    """The hover box of a point: above and to the right of it, kept inside the chart."""
    lines = [part for line in lines for part in _wrap(line, 100)][:12]
    w = max(len(line) for line in lines) * CHAR + 14
    h = len(lines) * 15 + 8
    x = px + 10 if px + 10 + w < width - 4 else max(4, px - 10 - w)
    y = py - h - 8 if py - h - 8 > top else py + 10
    text = "".join(f'<text x="{round(x + 7, 1)}" y="{round(y + 16 + i * 15, 1)}"'
                   + (' font-weight="bold"' if i == 0 else "") + f">{_e(line)}</text>" for i, line in enumerate(lines))
    return (f'<g class="lc-tip" id="{pid}-tip"><rect x="{round(x, 1)}" y="{round(y, 1)}" width="{round(w, 1)}" height="{h}" rx="3"/>'
            f"{text}</g>")


def _ticks(start: datetime.date, end: datetime.date) -> list[tuple[datetime.date, str]]:
    """First days of months (or of every 2, 3, 6, 12... months) within [start, end]."""
    months = (end.year - start.year) * 12 + end.month - start.month + 1
    step = next((s for s in (1, 2, 3, 6, 12, 24, 60, 120) if months / s <= 12), 240)
    out = []
    y, m = start.year, start.month
    while True:
        day = datetime.date(y, m, 1)
        if day > end:
            break
        index = y * 12 + m - 1
        if day >= start and index % step == 0:
            text = day.strftime("%b") if step < 12 and m != 1 else str(y) if step >= 12 else f"{day.strftime('%b')} {y}"
            out.append((day, text))
        m += 1
        if m > 12:
            y, m = y + 1, 1
    return out


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [text]

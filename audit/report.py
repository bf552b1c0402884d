"""The audit's HTML report: one self-contained page (no script, no external file but the
patients' viewer pages it links to), opening on the worklist.

Sections: the worklist (the most urgent patients: severe, unassessable results not acted on,
overdue orders, due this week), counts by urgency and by state, adherence (orders whose window
closed by the audit date and did not go overdue), simple charts (inline SVG), and the patients
skipped for wrong input with where and why.
"""

from __future__ import annotations

import html
import re
from collections import Counter

import pyarrow.compute as pc

from .summary import TIERS

TIER_TEXT = {
    "severe": "in a severe state", "unassessable": "results not acted on (unassessable)",
    "overdue": "overdue order", "due": "due this week", "watch": "mild or moderate state",
    "routine": "routine", "skipped": "skipped: wrong input",
}
TIER_COLOUR = {"severe": "#b2182b", "unassessable": "#d6604d", "overdue": "#f4a582", "due": "#fddbc7",
               "watch": "#d1e5f0", "routine": "#92c5de", "skipped": "#999999"}
WORKLIST_ROWS = 500


def _counts(column) -> Counter:
    return Counter({row["values"]: row["counts"] for row in pc.value_counts(column).to_pylist()})


def page_name(patient: str) -> str:
    """A patient's viewer page file name (safe on any file system)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", patient)[:80]
    return f"{safe}-{abs(hash_text(patient)) % 10**8:08d}.html"


def hash_text(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def build(result, protocol_name: str, pages_dir: str | None, pages: set[str]) -> str:
    t = result.table
    rows = t.slice(0, WORKLIST_ROWS).to_pylist()
    e = html.escape
    urg = _counts(t.column("urgency"))
    states = Counter()
    for combination, n in _counts(t.column("states")).items():  # counted by pyarrow: a million rows stay in Arrow
        if combination:
            for one in combination.split("; "):
                states[one] += n
    closed = pc.sum(t.column("orders_closed")).as_py() or 0
    missed = pc.sum(t.column("orders_missed")).as_py() or 0
    kept = closed - missed
    adherence = f"{100 * kept / closed:.1f} %" if closed else "no order's window has closed"
    total = t.num_rows
    urgent = ("severe", "unassessable", "overdue", "due")
    worklist = [r for r in rows if r["urgency"] in urgent]
    on_list = sum(urg.get(t_, 0) for t_ in urgent)

    out = [f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Audit: {e(protocol_name)} at {result.as_of}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; position: sticky; top: 0; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.tier {{ display: inline-block; padding: 0 6px; border-radius: 3px; }}
nav a {{ margin-right: 1em; }}
.small {{ color: #666; font-size: 12px; }}
</style></head><body>
<h1>Audit of {e(protocol_name)} at {result.as_of}</h1>
<p>{total} patients; {len(result.skipped)} skipped for wrong input; {on_list} on the worklist
(the first {len(worklist)} shown; the table holds every patient).</p>
<nav><a href="#worklist">Worklist</a><a href="#counts">Counts</a><a href="#adherence">Adherence</a>
<a href="#charts">Charts</a><a href="#skipped">Skipped</a></nav>
<h2 id="worklist">Worklist</h2>
<table id="worklist-table"><thead><tr><th>#</th><th>patient</th><th>urgency</th><th>why</th><th>states</th>
<th>drug</th><th>open orders</th><th>days overdue</th><th>last panel</th><th>its grade</th></tr></thead><tbody>"""]
    for i, r in enumerate(worklist, 1):
        who = e(r["patient"])
        if pages_dir and r["patient"] in pages:
            who = f'<a href="{e(pages_dir)}/{e(page_name(r["patient"]))}">{who}</a>'
        tier = r["urgency"]
        out.append(
            f'<tr class="u-{tier}"><td class="n">{i}</td><td>{who}</td>'
            f'<td><span class="tier" style="background:{TIER_COLOUR[tier]}">{e(tier)}</span></td>'
            f'<td>{e(r["reason"] or "")}</td><td>{e(r["states"] or "")}</td><td>{e(r["drugs"] or "")}</td>'
            f'<td>{e(r["open_orders"] or "")}</td><td class="n">{r["days_overdue"] or 0}</td>'
            f'<td>{e(r["last_panel"] or "")}</td><td class="small">{e(r["last_grade"] or "")}</td></tr>')
    out.append("</tbody></table>")

    out.append('<h2 id="counts">Counts</h2><table><thead><tr><th>urgency</th><th>patients</th></tr></thead><tbody>')
    for tier in TIERS:
        out.append(f'<tr><td>{e(tier)}: {e(TIER_TEXT[tier])}</td><td class="n">{urg.get(tier, 0)}</td></tr>')
    out.append('</tbody></table><table id="states"><thead><tr><th>active state</th><th>patients</th></tr></thead><tbody>')
    for state, n in states.most_common():
        out.append(f"<tr><td>{e(state)}</td><td class=\"n\">{n}</td></tr>")
    out.append("</tbody></table>")

    out.append(f'<h2 id="adherence">Adherence</h2><p id="adherence-figure">Orders fulfilled in their window: '
               f'<b>{e(adherence)}</b> ({kept} of {closed} orders whose window closed by {result.as_of}; '
               f'{missed} went overdue).</p>')

    out.append('<h2 id="charts">Charts</h2>')
    out.append(bar_chart("Patients by urgency", [(t_, urg.get(t_, 0), TIER_COLOUR[t_]) for t_ in TIERS]))
    out.append(bar_chart("Patients by active state", [(s, n, "#4393c3") for s, n in states.most_common(15)]))

    out.append(f'<h2 id="skipped">Skipped ({len(result.skipped)})</h2>')
    if result.skipped or result.problems:
        out.append("<table><thead><tr><th>patient</th><th>where</th><th>code</th><th>why</th></tr></thead><tbody>")
        for s in result.skipped[:1000]:
            out.append(f"<tr><td>{e(s['patient'])}</td><td>{e(s['where'])}</td><td>{e(s['code'])}</td><td>{e(s['message'])}</td></tr>")
        for p in result.problems[:1000]:
            out.append(f"<tr><td>(no patient)</td><td>{e(p['where'])}</td><td>{e(p['code'])}</td><td>{e(p['message'])}</td></tr>")
        out.append("</tbody></table>")
    else:
        out.append("<p>None.</p>")
    out.append("</body></html>\n")
    return "\n".join(out)


def bar_chart(title: str, bars: list[tuple[str, int, str]]) -> str:
    """A horizontal bar chart as inline SVG."""
    e = html.escape
    top = max((n for _, n, _ in bars), default=0) or 1
    row, label_w, width = 22, 220, 360
    h = row * len(bars) + 30
    parts = [f'<figure><figcaption>{e(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" role="img" '
             f'width="{label_w + width + 80}" height="{h}" aria-label="{e(title)}">']
    for i, (label, n, colour) in enumerate(bars):
        y = 10 + i * row
        w = round(width * n / top)
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">{e(label)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w}" height="{row - 6}" fill="{colour}"/>'
                     f'<text x="{label_w + w + 4}" y="{y + 14}" font-size="12">{n}</text>')
    parts.append("</svg></figure>")
    return "".join(parts)

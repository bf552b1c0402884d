"""The cohort's report: a text summary for the terminal, and one self-contained HTML page (the
plots as SVG data URIs; no script, no style sheet or font from elsewhere).

The page: what was run (protocols, model, patients, years, seed, the command to run it again),
the metrics per protocol with 95% intervals, the paired differences against the first
protocol, the conclusion in words (from the numbers), the plots (detection delays, cost against
delay, example patients), the definitions of the metrics, and the patients that could not be
simulated. The same command and seed give the same page, byte for byte.
"""

from __future__ import annotations

import base64
import html
import shlex

import numpy as np

from .metrics import LABELS, METRICS, THRESHOLDS, Estimate

# how a metric's number is written: digits after the point
DIGITS = {"tests_per_py": 2, "liver_tests_per_py": 2, "false_alarms_per_true": 2, "missed_share_3x": 3, "missed_share_5x": 3,
          "lasting_missed_share_3x": 3, "lasting_missed_share_5x": 3, "within_30_share_3x": 3, "within_30_share_5x": 3,
          "median_delay_3x": 0, "median_delay_5x": 0, "median_peak_3x": 1, "median_peak_5x": 1}
# which way is better, for the words of the conclusion: -1 lower is better
BETTER = {"tests_per_py": -1, "missed_share_3x": -1, "missed_share_5x": -1, "median_delay_3x": -1,
          "median_delay_5x": -1, "median_peak_3x": -1, "median_peak_5x": -1, "false_alarms_per_true": -1}

DEFINITIONS = [
    ("blood draws per patient-year", "visits at which blood was drawn (one visit draws every order whose window is open), over the patient-years followed"),
    ("liver panels per patient-year", "visits at which ALT was drawn, over the patient-years"),
    ("holds, dose reductions, stops, referrals per 1,000 patient-years", "the protocol's drug steps that held, reduced or stopped the drug, and its actions named refer_..., over the patient-years, times 1,000"),
    ("episodes >3x / >5x ULN", "true injury episodes of the patient model (drug or background) whose noise-free ALT crossed 3x (5x) ULN during follow-up"),
    ("missed", "such an episode with no hold, reduction or stop between its onset and the day it is over (noise-free ALT back at or below 1x ULN, or the end of follow-up)"),
    ("lasting", "an episode that would not resolve while the drug continues (the model's drug episodes that do not adapt); the others (background episodes, adapting drug episodes) resolve by themselves"),
    ("acted on within 30 days", "episodes with an intervention within 30 days of the crossing, over all such episodes (missed ones included): unlike the median delay, it does not favour a protocol that misses the slow cases"),
    ("detection delay", "days from the crossing to the first hold, reduction or stop in that span; 0 when the protocol had acted before the crossing"),
    ("ALT multiple reached by the intervention", "the highest noise-free ALT multiple from the episode's onset to the intervention"),
    ("false alarms per true detection", "alarms (a hold, reduction or stop while the drug was on at full dose; its escalation before a resume is the same alarm) on a day with no episode under way, or only episodes that resolve by themselves, over alarms during an episode that would not"),
    ("95% intervals", "percentile bootstrap over patients (the same resamples for every protocol, so differences are paired)"),
]


def _fmt(e: Estimate, metric: str) -> str:
    k = DIGITS.get(metric, 1)
    if np.isnan(e.value):
        return "n/a"
    if np.isnan(e.low):
        return _n(e.value, k)
    return f"{_n(e.value, k)} ({_n(e.low, k)} to {_n(e.high, k)})"


def command_line(result, model_name: str) -> str:
    c = result.cohort
    parts = ["rxwatch", "cohort"] + [a.graph.graph.get("path") or a.label for a in c.arms] + [
        "--model", model_name, "--patients", str(c.patients), "--years", f"{c.years:g}", "--seed", str(c.seed)]
    if c.start.isoformat() != "2025-01-06":
        parts += ["--start", c.start.isoformat()]
    shared = _shared_policy(c)
    if shared is not None:  # one policy for every protocol: --prefer ACTION
        parts += [x for action in shared for x in ("--prefer", action)]
    else:  # each protocol its own: --prefer N:ACTION
        parts += [x for i, a in enumerate(c.arms, 1) for action in a.prefer for x in ("--prefer", f"{i}:{action}")]
    return " ".join(shlex.quote(p) for p in parts)


def _shared_policy(c) -> tuple | None:
    """The policy (`Arm.prefer`) every protocol of the cohort runs under, None when they differ."""
    policies = {a.prefer for a in c.arms}
    return next(iter(policies)) if len(policies) == 1 else None


def _policy(prefer: tuple) -> str:
    if not prefer:
        return "each `do one of` takes its first option"
    return (f"a `do one of` takes {', else '.join(prefer)} where it offers "
            f"{'it' if len(prefer) == 1 else 'one'}, else its first option")


def choice_policy(c) -> str:
    """What a protocol's `do one of` takes in this cohort (each protocol's, when they differ)."""
    shared = _shared_policy(c)
    if shared is not None:
        return _policy(shared)
    return "; ".join(f"{a.label}: {_policy(a.prefer)}" for a in c.arms)


def text_summary(result, *, model_name: str) -> str:
    """The metrics as a plain table: one column per protocol, then the differences."""
    m = result.metrics
    c = result.cohort
    names = m.protocols
    head = [f"{c.patients:,} patient{'s' if c.patients != 1 else ''} x {c.years:g} year{'s' if c.years != 1 else ''} (seed {c.seed}), model {model_name}; "
            f"95% intervals: bootstrap over patients ({m.resamples:,} resamples)"]
    head.append(f"choices: {choice_policy(c)}")
    rows = [["metric"] + names + [f"{p} - {names[0]}" for p in names[1:]]]
    for metric in METRICS:
        rows.append([LABELS[metric]] + [_fmt(m.value(p, metric), metric) for p in names]
                    + [_fmt(m.difference(p, metric), metric) for p in names[1:]])
    for x in THRESHOLDS:
        rows.append([f"episodes >{x}x ULN: detected / missed"] + [
            f"{int(m.totals[p][f'detected_{x}x'])} / {int(m.totals[p][f'missed_{x}x'])}" for p in names] + [""] * (len(names) - 1))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = head + [""]
    for i, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for head, items in conclusion(result):
        lines.append("")
        lines.append(head)
        lines.extend(f"  {item}" for item in items)
    return "\n".join(lines)


def _n(x: float, digits: int, sign: bool = False) -> str:
    """`x` with `digits` decimals (a + when `sign`); never a negative zero."""
    x = round(float(x), digits) + 0.0  # -0.0 + 0.0 is 0.0
    if x == 0:
        return f"{0:.{digits}f}"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def conclusion(result) -> list[tuple[str, list[str]]]:
    """The comparison in words, from the numbers: for each protocol against the first, one
    line per metric on cost and on detection, saying when the interval excludes no difference."""
    m = result.metrics
    ref = m.protocols[0]
    out = []
    for p in m.protocols[1:]:
        lines = []
        for metric in ("tests_per_py", "liver_tests_per_py", "within_30_share_3x", "within_30_share_5x",
                       "missed_share_3x", "lasting_missed_share_3x", "median_delay_3x", "median_peak_3x",
                       "false_alarms_per_true", "holds_per_kpy", "stops_per_kpy", "referrals_per_kpy"):
            d = m.difference(p, metric)
            k = DIGITS.get(metric, 1)
            if np.isnan(d.value):
                continue
            if np.isnan(d.low):
                sure = "too few episodes for an interval"
            elif d.low == d.high == d.value == 0:
                sure = "the same in every resample"
            elif d.low > 0 or d.high < 0:
                sure = f"95% interval {_n(d.low, k, True)} to {_n(d.high, k, True)}"
            else:
                sure = f"95% interval {_n(d.low, k, True)} to {_n(d.high, k, True)}: no clear difference"
            lines.append(f"{LABELS[metric]}: {_n(d.value, k, True)} ({sure})")
        out.append((f"{p} against {ref} (the same patients; {p} minus {ref}):", lines))
    return out


def build(result, *, model_name: str) -> str:
    from . import plots

    m = result.metrics
    c = result.cohort
    e = html.escape
    names = m.protocols
    out = [f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cohort: {e(" vs ".join(names))}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1150px; color: #222; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
code {{ background: #f4f4f4; padding: 1px 4px; }}
figure {{ margin: 1em 0 2em; }} figure img {{ max-width: 100%; }}
.conclusion {{ background: #f6f8fa; border-left: 4px solid #4477aa; padding: .5em 1em; }}
.small {{ color: #666; font-size: 12px; }}
</style></head><body>
<h1>Cohort simulation: {e(" vs ".join(names))}</h1>
<p>{c.patients:,} synthetic patients, each followed {c.years:g} year{'s' if c.years != 1 else ''} from {c.start.isoformat()} through every
protocol (the same patients and the same random draws for each), patient model <code>{e(model_name)}</code>,
seed {c.seed}. Choices: {e(choice_policy(c))}. Reproduce: <code>{e(command_line(result, model_name))}</code></p>
<h2 id="conclusion">Conclusion</h2>
<div class="conclusion">"""]
    for head, items in conclusion(result):
        out.append(f"<p>{e(head)}</p><ul>")
        out.extend(f"<li>{e(item)}</li>" for item in items)
        out.append("</ul>")
    if len(names) == 1:
        out.append("<p>One protocol: no comparison.</p>")
    out.append("</div>")
    out.append('<h2 id="metrics">Metrics (95% intervals)</h2><table id="metrics-table"><thead><tr><th>metric</th>')
    out.extend(f"<th>{e(p)}</th>" for p in names)
    out.extend(f"<th>{e(p)} &minus; {e(names[0])}</th>" for p in names[1:])
    out.append("</tr></thead><tbody>")
    for metric in METRICS:
        out.append(f'<tr data-metric="{metric}"><td>{e(LABELS[metric])}</td>')
        out.extend(f'<td class="n">{e(_fmt(m.value(p, metric), metric))}</td>' for p in names)
        out.extend(f'<td class="n">{e(_fmt(m.difference(p, metric), metric))}</td>' for p in names[1:])
        out.append("</tr>")
    out.append("</tbody></table>")
    out.append('<h3>Totals</h3><table id="totals-table"><thead><tr><th></th>')
    out.extend(f"<th>{e(p)}</th>" for p in names)
    out.append("</tr></thead><tbody>")
    shown = [("patient-years", "years"), ("blood draws", "draws"), ("liver panels", "liver_draws"), ("holds", "holds"), ("dose reductions", "reductions"),
             ("stops", "stops"), ("referrals", "referrals"), ("true alarms", "true_alarms"), ("false alarms", "false_alarms")]
    for x in THRESHOLDS:
        shown += [(f"episodes >{x}x ULN", f"episodes_{x}x"), ("  detected", f"detected_{x}x"),
                  ("  within 30 days", f"within_30_{x}x"), ("  missed", f"missed_{x}x"), ("  lasting", f"lasting_{x}x"),
                  ("  lasting, missed", f"lasting_missed_{x}x")]
    for text, col in shown:
        out.append(f"<tr><td>{e(text)}</td>")
        out.extend(f'<td class="n">{m.totals[p][col]:,.0f}</td>' for p in names)
        out.append("</tr>")
    out.append("</tbody></table>")
    out.append('<h2 id="plots">Plots</h2>')
    for name, caption, fig in plots.figures(result):
        uri = "data:image/svg+xml;base64," + base64.b64encode(plots.svg_bytes(fig)).decode("ascii")
        plots.close(fig)
        out.append(f'<figure id="fig-{name}"><img alt="{e(caption)}" src="{uri}"><figcaption>{e(caption)}</figcaption></figure>')
    out.append('<h2 id="definitions">What the metrics mean</h2><dl>')
    for term, text in DEFINITIONS:
        out.append(f"<dt><b>{e(term)}</b></dt><dd>{e(text)}</dd>")
    out.append("</dl>")
    if result.failed:
        out.append(f'<h2 id="failed">Patients not simulated ({len(result.failed)})</h2><table><thead><tr><th>protocol</th>'
                   f"<th>patient</th><th>why</th></tr></thead><tbody>")
        for f in result.failed[:500]:
            out.append(f"<tr><td>{e(f['protocol'])}</td><td class=\"n\">{f['patient']}</td><td>{e(f['problem'])}</td></tr>")
        out.append("</tbody></table>")
    out.append('<p class="small">Made by rxwatch cohort (docs/cohort.md).</p></body></html>\n')
    return "\n".join(out)

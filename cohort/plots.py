"""The cohort's plots (matplotlib, Agg, imported when a plot is made): detection-delay
distributions, cost against delay per protocol, and a few example patients' lab curves with
their orders and the protocol's actions on a time axis. `write_all` writes each as PNG and SVG
(`rxwatch cohort --plot DIR`); the HTML report embeds the SVGs.

SVG and PNG carry no date and the SVG ids are salted with a fixed text, so the same run gives
the same bytes.
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import numpy as np

from .metrics import THRESHOLDS

COLOURS = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377"]
DRUG_COLOUR = {"on": "#d9ead3", "reduced": "#fff2cc", "held": "#fce5cd", "stopped": "#f4cccc"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "rxwatch-cohort"
    matplotlib.rcParams["font.size"] = 9
    return plt


def figures(result) -> list:
    """[(name, caption, figure)] in the report's order."""
    out = [
        ("delays", "Detection delay: share of detected episodes acted on within N days of crossing 3x and 5x ULN, per protocol", delay_figure(result.metrics)),
        ("cost", "Cost against delay: liver panels per patient-year against the median detection delay (95% intervals)", cost_figure(result.metrics)),
    ]
    for patient, pics in sorted(result.examples.items()):
        out.append((f"patient-{patient}", f"Patient {patient}: noise-free ALT (line), results drawn (dots), orders "
                    f"(windows) and drug steps under each protocol", patient_figure(patient, pics)))
    return out


def delay_figure(metrics):
    plt = _plt()
    fig, axes = plt.subplots(1, len(THRESHOLDS), figsize=(9, 3.4), sharey=True)
    for ax, x in zip(np.atleast_1d(axes), THRESHOLDS):
        for i, p in enumerate(metrics.protocols):
            d = np.sort(metrics.delays[p][x])
            missed = int(metrics.totals[p][f"missed_{x}x"])
            n = d.size + missed
            if n == 0:
                continue
            steps = np.concatenate([[0], d])
            share = np.arange(d.size + 1) / n
            ax.step(steps, share, where="post", color=COLOURS[i % len(COLOURS)],
                    label=f"{p} (n={n}, missed {missed})")
        ax.set_title(f"episodes crossing {x}x ULN")
        ax.set_xlabel("days from crossing to a hold, reduction or stop")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=.3)
        _legend(ax, fontsize=7, loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("share of episodes acted on")
    fig.tight_layout()
    return fig


def cost_figure(metrics):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 4))
    for i, p in enumerate(metrics.protocols):
        c = COLOURS[i % len(COLOURS)]
        t = metrics.value(p, "liver_tests_per_py")
        for x, marker in zip(THRESHOLDS, ("o", "s")):
            d = metrics.value(p, f"median_delay_{x}x")
            if np.isnan(d.value) or np.isnan(t.value):
                continue
            xerr = None if np.isnan(t.low) else [[t.value - t.low], [t.high - t.value]]
            yerr = None if np.isnan(d.low) else [[d.value - d.low], [d.high - d.value]]
            ax.errorbar(t.value, d.value, xerr=xerr, yerr=yerr, fmt=marker, color=c, capsize=3,
                        label=f"{p}, >{x}x ULN", mfc=c if x == 3 else "white")
    ax.set_xlabel("liver panels (ALT drawn) per patient-year")
    ax.set_ylabel("median days from crossing to an intervention")
    ax.grid(alpha=.3)
    _legend(ax, fontsize=7)
    fig.tight_layout()
    return fig


def _d(iso: str) -> datetime.date:
    return datetime.date.fromisoformat(iso)


def patient_figure(patient: int, pics: dict):
    plt = _plt()
    import matplotlib.dates as mdates

    n = len(pics)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.6 * n), sharex=True, squeeze=False)
    for ax, (i, (label, pic)) in zip(axes[:, 0], enumerate(pics.items())):
        days = [_d(d) for d, _ in pic["curve"]]
        top = max([m for _, m in pic["curve"]] + [m for _, lab, m in pic["results"] if lab == "ALT"] + [5.5])
        end = days[-1] if days else None
        # the drug's status as bands behind the curves
        steps = pic["drug"]
        for j, (d, kind, status, fraction) in enumerate(steps):
            stop = _d(steps[j + 1][0]) if j + 1 < len(steps) else end
            shown = "reduced" if status == "on" and fraction < 1 else status
            ax.axvspan(_d(d), stop, color=DRUG_COLOUR.get(shown, "#eeeeee"), zorder=0, lw=0)
            if kind in ("hold", "reduce", "stop"):
                ax.axvline(_d(d), color="#990000", lw=1, zorder=1)
                ax.annotate(kind, (_d(d), top * 1.02), fontsize=7, color="#990000", ha="left", va="bottom")
        for level, style in ((1, ":"), (3, "--"), (5, "--")):
            ax.axhline(level, color="#888888", ls=style, lw=.8, zorder=1)
        ax.plot(days, [m for _, m in pic["curve"]], color="#333333", lw=1.2, zorder=2, label="noise-free ALT")
        alt = [(_d(d), m) for d, lab, m in pic["results"] if lab == "ALT"]
        if alt:
            ax.plot([d for d, _ in alt], [m for _, m in alt], "o", color=COLOURS[i % len(COLOURS)], ms=4, zorder=3,
                    label="ALT drawn")
        # the liver orders' windows as bars under the curve
        for ordered, action, a, b in pic["orders"]:
            if action == "order_lfts" or "lft" in action or "liver" in action:
                ax.plot([_d(a), _d(b)], [-0.25, -0.25], color="#4477aa", lw=4, solid_capstyle="butt", zorder=2)
        if days:
            ax.set_xlim(days[0], days[-1])
        ax.set_ylim(-0.5, top * 1.12)
        ax.set_ylabel("x ULN")
        ax.set_title(label, fontsize=9, loc="left")
        ax.grid(alpha=.2)
    _legend(axes[0, 0], fontsize=7, loc="upper right")
    first = next(iter(pics.values()))
    told = [f"{e['kind']} episode from {e['onset']}, peak {e['peak']:.1f}x ULN"
            + (", resolves by itself" if e["self_resolving"] else ", lasts while the drug is taken")
            for e in first.get("episodes", [])]
    fig.suptitle(f"patient {patient}: " + ("; ".join(told) if told else "no injury episode"), fontsize=9)
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    axes[-1, 0].set_xlabel("bars: liver-test order windows; bands: drug on (green), reduced (yellow), held (orange), stopped (red)")
    fig.tight_layout()
    return fig


def svg_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return buf.getvalue()


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, metadata={"Software": None})
    return buf.getvalue()


def close(fig) -> None:
    _plt().close(fig)


def write_all(result, folder: Path) -> list[Path]:
    """Every figure as NAME.png and NAME.svg in `folder`."""
    written = []
    for name, _, fig in figures(result):
        for ext, data in (("png", png_bytes(fig)), ("svg", svg_bytes(fig))):
            path = Path(folder) / f"{name}.{ext}"
            path.write_bytes(data)
            written.append(path)
        close(fig)
    return written


def _legend(ax, **kw) -> None:
    """A legend when something drawn has a label (a tiny cohort may have drawn nothing: no
    empty legend, and no warning from matplotlib about it)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)

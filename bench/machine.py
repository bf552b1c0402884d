"""What every benchmark prints first: the machine, the date and the versions that matter."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def describe(**versions: str) -> str:
    """`date ...; nproc 2; CPU ...; Python 3.11.7; lark 1.3.1; ...; load average ...`."""
    extra = "".join(f"; {name} {version}" for name, version in versions.items())
    return (
        f"date {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}; nproc {os.cpu_count()}; CPU {cpu_model()}; "
        f"Python {platform.python_version()}{extra}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

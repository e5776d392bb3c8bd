"""Where benchmark figures go: bench/results/NAME.json and a section of docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        ram_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        ram_gib = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": ram_gib,
        "python": platform.python_version(),
        # Other work on the machine skews timings; the ratios measured in one run less so.
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"date": dt.date.today().isoformat(), "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def write_section(name: str, markdown: str) -> None:
    """Replace the text between <!-- NAME:start --> and <!-- NAME:end --> (or append it)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    m = machine()
    stamp = (
        f"_Measured {dt.date.today().isoformat()} on {m['cpu']}, {m['cores']} cores,"
        f" {m['ram_gib']} GiB RAM, Python {m['python']},"
        f" load average {m['load_average_1min']} at the end of the run._\n\n"
    )
    block = f"{start}\n{stamp}{markdown.strip()}\n{end}"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS_MD.write_text(text)

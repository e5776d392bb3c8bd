"""The README's first command: the demo federation runs its case end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from prum.demo import run as demo
from prum.demo.samples import SampleSet

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_demo_case_runs_from_probe_to_released_core_data(
    tmp_path: Path, samples: SampleSet
) -> None:
    out = Console(file=(tmp_path / "demo.log").open("w"), width=120)
    result = demo.run(tmp_path / "demo", workers=2, console=out, keep_running=False)
    assert result["failed"] == {}
    face = result["face"]
    statuses = {r["party"]: r["status"] for r in face["search"]["replies"]}
    assert set(statuses) == {"DE", "HU", "NL", "EUROPOL"}
    assert statuses["DE"] == "answered"
    assert face["core_data"]["surnames"]
    assert all(report["ok"] for report in face["audit"].values())
    dna_hits = {r["party"]: r["candidates"] for r in result["dna"]["search"]["replies"]}
    assert dna_hits["DE"][0]["details"]["match"] == "match"
    initial = {job["party"]: job for job in result["dna"]["comparisons"]}
    assert initial["DE"]["hits"] >= 6  # the traces of DE's people that AT holds
    assert result["records"]["core_data"]["surnames"] == ["Παπαδόπουλος"]
    assert "stolen" in result["vehicle"]["vehicle"]["signals"]
    assert result["finger"]["found"]  # TP/TP: another impression of the probe's finger

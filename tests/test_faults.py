"""A quick part of the fault campaign (bench/faults.py) on every test run: a real
federation, the router killed mid-fan-out, the holder killed during a release, nodes that
never answer, answer garbage or sign with another party's key, a full disk under an
import and under an audit log, a certificate revoked mid-run, a holder killed before
its erasure notices left, a node killed in the middle of a national-systems batch. Each
must be survived with nothing lost and nothing twice. The whole campaign is
`python bench/faults.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
QUICK = [
    "router killed",
    "holder killed",
    "never answers",
    "garbage",
    "signed by another",
    "full during an import",
    "holder's audit",
    "revoked",
    "erasure notices",
    "national-systems batch",
]
NEEDS_ROOT = {"disk full during an import", "disk full under the holder's audit log"}


def test_quick_faults_are_survived_with_nothing_lost(tmp_path: Path) -> None:
    out = tmp_path / "faults.json"
    command = [sys.executable, str(ROOT / "bench" / "faults.py"), "--skip-inputs"]
    command += ["--root", str(tmp_path / "federation"), "--json", str(out), "--only", *QUICK]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(out.read_text())
    rows = {row["name"]: row for row in result["faults"]}
    assert len(rows) == len(QUICK), sorted(rows)
    for name, row in rows.items():
        if row["seen"].startswith("not run"):
            assert os.geteuid() != 0 and name in NEEDS_ROOT, row
            continue
        assert row["survived"], row
        assert row["lost"] == 0 and row["duplicated"] == 0, row

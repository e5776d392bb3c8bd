"""The `prum face` commands as an operator types them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prum.cli import app
from prum.demo.samples import SampleSet

pytestmark = pytest.mark.realdata
runner = CliRunner()


def test_enrol_search_quality_delete(tmp_path: Path, samples: SampleSet) -> None:
    (probe, _), *others = samples.images
    photos = tmp_path / "photos"
    photos.mkdir()
    for path, _ in others[:5]:
        (photos / path.name).write_bytes(path.read_bytes())
    node = ["--data-dir", str(tmp_path / "node")]

    enrolled = runner.invoke(app, ["face", "enroll", str(photos), "--workers", "1", *node])
    assert enrolled.exit_code == 0, enrolled.output
    assert re.search(r"enrolled (\d+)", enrolled.output)

    searched = runner.invoke(app, ["face", "search", str(probe), "--json", *node])
    assert searched.exit_code == 0, searched.output
    result = json.loads(searched.output)
    assert result["candidates"] and result["candidates"][0]["rank"] == 1

    quality = runner.invoke(app, ["face", "quality", str(probe), "--json"])
    assert quality.exit_code == 0, quality.output
    faces = json.loads(quality.output)["faces"]
    assert len(faces) == 1 and 0 <= faces[0]["overall"] <= 100

    reference = result["candidates"][0]["reference"]
    deleted = runner.invoke(app, ["face", "delete", reference, "--reason", "test", *node])
    assert deleted.exit_code == 0, deleted.output
    again = runner.invoke(app, ["face", "delete", reference, "--reason", "test", *node])
    assert again.exit_code == 2
    assert "unknown_reference" in again.output


def test_unreadable_probe_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "probe.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 cut short")
    result = runner.invoke(app, ["face", "quality", str(bad)])
    assert result.exit_code == 2
    assert "unreadable_image" in result.output

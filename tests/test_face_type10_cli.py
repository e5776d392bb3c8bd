"""`prum face` with ANSI/NIST-ITL Type-10 transactions, and with one photo."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from prum.categories.face.type10 import read_face_transaction
from prum.categories.face.type10_write import FaceToWrite, write_face_transaction
from prum.cli import app
from prum.demo.samples import SampleSet

pytestmark = pytest.mark.realdata
runner = CliRunner()


def _by_identity(samples: SampleSet) -> dict[str, list[Path]]:
    people: dict[str, list[Path]] = {}
    for path, identity in samples.images:
        people.setdefault(identity, []).append(path)
    return {k: v for k, v in people.items() if len(v) >= 3}


def test_one_photo_enrols_and_prints_no_traceback(tmp_path: Path, samples: SampleSet) -> None:
    photo = samples.images[0][0]
    node = ["--data-dir", str(tmp_path / "node")]
    result = runner.invoke(app, ["face", "enroll", str(photo), "-j", "1", *node])
    assert result.exit_code == 0, result.output
    assert "enrolled 1," in result.output
    assert "Traceback" not in result.output and "{" not in result.output
    again = runner.invoke(app, ["face", "enroll", str(photo), "-j", "1", "--json", *node])
    assert json.loads(again.stdout)["already_present"] == 1


def test_a_photo_named_like_a_manifest_is_a_clear_error(tmp_path: Path, samples: SampleSet) -> None:
    fake = tmp_path / "photos.csv"
    fake.write_bytes(samples.images[0][0].read_bytes())
    result = runner.invoke(app, ["face", "enroll", str(fake), "--data-dir", str(tmp_path / "n")])
    assert result.exit_code == 2
    assert "is not a CSV manifest" in result.output and "Traceback" not in result.output


def test_a_file_that_is_nothing_known_is_a_clear_error(tmp_path: Path) -> None:
    odd = tmp_path / "photo"
    odd.write_bytes(b"\x00\x01 not an image")
    result = runner.invoke(app, ["face", "enroll", str(odd), "--data-dir", str(tmp_path / "n")])
    assert result.exit_code == 2
    assert "neither a photo" in result.output


def test_transactions_enrol_frontal_images_with_their_tcn_as_provenance(
    tmp_path: Path, samples: SampleSet
) -> None:
    people = _by_identity(samples)
    folder = tmp_path / "export"
    folder.mkdir()
    for number, (_identity, photos) in enumerate(sorted(people.items())[:3]):
        faces = [FaceToWrite(photos[0].read_bytes(), sap=30)]
        faces.append(FaceToWrite(photos[1].read_bytes(), pose="L", sap=30))
        tx = write_face_transaction(faces, control_number=f"TCN-{number}", originating_agency="XX0")
        (folder / f"mugshot-{number}.an2").write_bytes(tx)
    (folder / "broken.eft").write_bytes(b"1.001:500\x1d1.002:0502\x1c")
    node = ["--data-dir", str(tmp_path / "node")]
    result = runner.invoke(app, ["face", "enroll", str(folder), "-j", "1", "--json", *node])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["enrolled"], summary["refused"], summary["transactions"]) == (3, 1, 4)
    assert summary["images_not_searched"] == 3
    assert summary["refusals"][0]["code"] == "malformed_nist_record"

    probe = sorted(people.items())[1][1][2]
    found = runner.invoke(app, ["face", "search", str(probe), "--json", *node])
    assert found.exit_code == 0, found.output
    first = json.loads(found.stdout)["candidates"][0]
    assert "TCN TCN-1 (XX0) 10.001" in first["provenance"]
    assert "not searched: 10.002 L" in first["provenance"]


def test_search_writes_the_candidate_as_a_type10_transaction(
    tmp_path: Path, samples: SampleSet
) -> None:
    people = _by_identity(samples)
    _identity, photos = sorted(people.items())[0]
    node = ["--data-dir", str(tmp_path / "node")]
    enrolled = runner.invoke(app, ["face", "enroll", str(photos[0]), "-j", "1", *node])
    assert enrolled.exit_code == 0, enrolled.output
    probe = tmp_path / "probe.an2"
    probe.write_bytes(
        write_face_transaction([FaceToWrite(photos[1].read_bytes(), sap=1)], control_number="P1")
    )
    out = tmp_path / "answer"
    result = runner.invoke(app, ["face", "search", str(probe), "--type10", str(out), *node])
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.an2"))
    assert files, result.output
    assert "base64" not in result.output and len(result.output) < 5000
    candidate = read_face_transaction(files[0].read_bytes(), "int-i", use="probe")
    assert candidate.best.quality["overall"] > 0
    assert candidate.best.payload == photos[0].read_bytes()


def test_a_transaction_probe_without_a_face_is_refused_by_the_quality_check(
    tmp_path: Path, samples: SampleSet
) -> None:
    noise = np.random.default_rng(5).integers(0, 255, (240, 200, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG")
    probe = tmp_path / "cctv.an2"
    probe.write_bytes(
        write_face_transaction([FaceToWrite(buffer.getvalue(), sap=1)], control_number="P2")
    )
    node = ["--data-dir", str(tmp_path / "node")]
    enrolled = runner.invoke(app, ["face", "enroll", str(samples.images[0][0]), "-j", "1", *node])
    assert enrolled.exit_code == 0, enrolled.output
    result = runner.invoke(app, ["face", "search", str(probe), *node])
    assert result.exit_code == 2
    assert "no_face_found" in result.output and "Traceback" not in result.output

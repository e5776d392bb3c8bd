"""The ``prum finger`` and ``prum records`` commands as an operator types them: what is
refused changes nothing, a person sees tables and files, a program asks for JSON."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prum.categories.records.keys import create_key_file
from prum.cli import app
from prum.demo.samples import PrintSet

runner = CliRunner()


@pytest.fixture
def node(tmp_path: Path) -> list[str]:
    return ["--data-dir", str(tmp_path / "node")]


def test_fingers_enrol_search_delete(tmp_path: Path, prints: PrintSet, node: list[str]) -> None:
    finger, impression = prints.probe
    held = [p for p in prints.impressions(finger) if p.impression != impression][:1]
    others = [prints.impressions(f)[0] for f in prints.fingers if f != finger][:2]
    files = [str(p.path) for p in held + others]
    probe = next(p for p in prints.impressions(finger) if p.impression == impression)

    enrolled = runner.invoke(app, ["finger", "enroll", *files, "--position", "2", *node])
    assert enrolled.exit_code == 0, enrolled.output
    assert f"enrolled {len(files)} fingerprint records" in enrolled.output
    mate = enrolled.output.split(f"{files[0]}: ")[1].split()[0]

    searched = runner.invoke(app, ["finger", "search", str(probe.path), "--json", *node])
    assert searched.exit_code == 0, searched.output
    answer = json.loads(searched.stdout)
    assert answer["gallery_size"] == len(files)
    assert answer["candidates"][0]["reference"] == mate

    deleted = runner.invoke(app, ["finger", "delete", mate, "--reason", "test", *node])
    assert deleted.exit_code == 0, deleted.output
    again = runner.invoke(app, ["finger", "delete", mate, "--reason", "test", *node])
    assert again.exit_code == 2 and "unknown_reference" in again.output


def test_a_bad_file_among_good_prints_stores_nothing(
    tmp_path: Path, prints: PrintSet, node: list[str]
) -> None:
    good = str(prints.impressions(prints.fingers[0])[0].path)
    bad = tmp_path / "garbage.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    refused = runner.invoke(app, ["finger", "enroll", good, str(bad), *node])
    assert refused.exit_code == 2
    assert str(bad) in refused.output
    searched = runner.invoke(app, ["finger", "search", good, "--json", *node])
    assert searched.exit_code == 0, searched.output
    assert json.loads(searched.stdout)["gallery_size"] == 0


def test_finger_search_shows_a_table_and_writes_the_images_only_into_a_named_folder(
    tmp_path: Path, prints: PrintSet, node: list[str]
) -> None:
    files = [str(prints.impressions(f)[0].path) for f in prints.fingers[:3]]
    probe = str(prints.impressions(prints.fingers[0])[1].path)
    enrolled = runner.invoke(app, ["finger", "enroll", *files, *node])
    assert enrolled.exit_code == 0, enrolled.output
    mate = enrolled.output.split(f"{files[0]}: ")[1].split()[0]

    shown = runner.invoke(app, ["finger", "search", probe, *node])
    assert shown.exit_code == 0, shown.output
    assert mate in shown.stdout and "for human verification" in shown.stdout
    assert "iVBORw0KGgo" not in shown.output  # no base64 PNG on the terminal
    assert "--images" in shown.stdout  # how to get the images instead

    folder = tmp_path / "candidates"
    written = runner.invoke(app, ["finger", "search", probe, "--images", str(folder), *node])
    assert written.exit_code == 0, written.output
    assert "iVBORw0KGgo" not in written.output
    images = sorted(folder.iterdir())
    assert len(images) == 3 and images[0].name == f"01-{mate}.png"
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in images)

    as_json = runner.invoke(
        app, ["finger", "search", probe, "--json", "--images", str(folder), *node]
    )
    assert as_json.exit_code == 0, as_json.output
    top = json.loads(as_json.stdout)["candidates"][0]
    assert top["reference"] == mate and top["image_file"] == str(images[0])
    assert base64.b64decode(top["image"]) == images[0].read_bytes()


def test_an_empty_or_corrupt_probe_is_one_line_and_exit_2(tmp_path: Path, node: list[str]) -> None:
    empty, corrupt = tmp_path / "empty.png", tmp_path / "latent.eft"
    empty.write_bytes(b"")
    corrupt.write_bytes(b"1.001:garbage")
    for probe, code in ((empty, "unreadable_image"), (corrupt, "malformed_nist_record")):
        refused = runner.invoke(app, ["finger", "search", str(probe), *node])
        # An exception escaping would be exit 1 here (the runner keeps it, a shell shows it).
        assert refused.exit_code == 2 and not isinstance(refused.exception, Exception)
        assert refused.output.count("\n") == 1 and f"error ({code})" in refused.output


def test_records_generate_import_search_delete(tmp_path: Path, node: list[str]) -> None:
    create_key_file(tmp_path / "node" / "records_key.json", "test-1")
    people = tmp_path / "people.jsonl"
    generated = runner.invoke(app, ["records", "generate", str(people), "--count", "50"])
    assert generated.exit_code == 0, generated.output
    wanted = {
        "surnames": ["Kovács"],
        "first_names": ["István"],
        "date_of_birth": "1984-03-07",
        "record": {"category": "convicted", "offence": "robbery", "case_number": "HU-1"},
    }
    with people.open("a", encoding="utf-8") as f:
        f.write(json.dumps(wanted, ensure_ascii=False) + "\n")

    imported = runner.invoke(app, ["records", "import", str(people), *node])
    assert imported.exit_code == 0, imported.output
    assert "imported 51 police records" in imported.output

    query = json.dumps(
        {"surnames": ["Kovacs"], "first_names": ["Istvan"], "date_of_birth": "1984-03-07"}
    )
    shown = runner.invoke(app, ["records", "search", query, *node])
    assert shown.exit_code == 0, shown.output
    assert "gallery of 51;" in shown.stdout and "agrees on" in shown.stdout
    searched = runner.invoke(app, ["records", "search", query, "--json", *node])
    assert searched.exit_code == 0, searched.output
    answer = json.loads(searched.stdout)
    assert answer["gallery_size"] == 51
    top = answer["candidates"][0]
    assert top["rank"] == 1 and top["reference"] in shown.stdout

    deleted = runner.invoke(app, ["records", "delete", top["reference"], "--reason", "t", *node])
    assert deleted.exit_code == 0, deleted.output
    after = json.loads(runner.invoke(app, ["records", "search", query, "--json", *node]).stdout)
    assert all(c["reference"] != top["reference"] for c in after["candidates"])


def test_a_bad_line_refuses_the_whole_records_file(tmp_path: Path, node: list[str]) -> None:
    create_key_file(tmp_path / "node" / "records_key.json", "test-1")
    lines = tmp_path / "people.jsonl"
    lines.write_text(
        json.dumps({"surnames": ["Weber"], "first_names": ["Anna"]})
        + "\n{not json\n"
        + json.dumps({"first_names": ["Nobody"]})
        + "\n"
        + json.dumps({"surnames": ["Roth"], "record": {"category": "martian"}})
        + "\n",
        encoding="utf-8",
    )
    refused = runner.invoke(app, ["records", "import", str(lines), *node])
    assert refused.exit_code == 2
    assert "line 2: not JSON" in refused.output and "line 3" in refused.output

    only_category_bad = tmp_path / "category.jsonl"
    only_category_bad.write_text(
        json.dumps({"surnames": ["Weber"], "first_names": ["Anna"]})
        + "\n"
        + json.dumps({"surnames": ["Roth"], "record": {"category": "martian"}})
        + "\n",
        encoding="utf-8",
    )
    refused = runner.invoke(app, ["records", "import", str(only_category_bad), *node])
    assert refused.exit_code == 2 and "martian" in refused.output
    query = json.dumps({"surnames": ["Weber"], "first_names": ["Anna"]})
    searched = runner.invoke(app, ["records", "search", query, "--json", *node])
    assert searched.exit_code == 0, searched.output
    assert json.loads(searched.stdout)["gallery_size"] == 0

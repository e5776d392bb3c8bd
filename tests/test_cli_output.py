"""What a person sees on the command line: tables and messages, JSON only with ``--json``,
and every error as one line with exit code 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from prum.cli import app
from prum.cliargs import TRACEBACK_ENV
from prum.clioutput import image_suffix

runner = CliRunner()


def one_line_error(result: Result, code: str) -> None:
    # An exception escaping would be exit 1 here (the runner keeps it, a shell shows it).
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception), result.exception
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"error ({code}): ")


@pytest.fixture
def register(tmp_path: Path) -> tuple[list[str], list[str]]:
    """A node with 20 synthetic vehicles: its options and the first CSV row."""
    csv_file, url = tmp_path / "register.csv", f"sqlite:///{tmp_path / 'node.sqlite'}"
    assert (
        runner.invoke(app, ["vehicle", "generate", str(csv_file), "--count", "20"]).exit_code == 0
    )
    imported = runner.invoke(app, ["vehicle", "import", str(csv_file), "--database-url", url])
    assert imported.exit_code == 0, imported.output
    return ["--database-url", url], csv_file.read_text().splitlines()[1].split(",")


def test_vehicle_query_shows_the_registration_and_json_only_when_asked(
    register: tuple[list[str], list[str]],
) -> None:
    node, row = register
    plate, vin = row[1], row[2]
    shown = runner.invoke(app, ["vehicle", "query", "--vin", vin, *node])
    assert shown.exit_code == 0, shown.output
    assert "VIN (E)" in shown.stdout and vin in shown.stdout and plate in shown.stdout
    assert "{" not in shown.stdout

    as_json = runner.invoke(app, ["vehicle", "query", "--vin", vin, "--json", *node])
    assert as_json.exit_code == 0, as_json.output
    [hit] = json.loads(as_json.stdout)
    assert hit["details"]["vin"] == vin and hit["details"]["plate"] == plate

    nothing = runner.invoke(app, ["vehicle", "query", "--plate", "ZZ 0", *node])
    assert nothing.exit_code == 0 and "no vehicle found" in nothing.stdout


def test_a_bad_vehicle_query_is_one_line_in_words(tmp_path: Path) -> None:
    node = ["--database-url", f"sqlite:///{tmp_path / 'node.sqlite'}"]
    no_key = runner.invoke(app, ["vehicle", "query", *node])
    one_line_error(no_key, "invalid_vehicle_query")
    assert "exactly one of plate" in no_key.output and "pydantic" not in no_key.output
    bad_date = runner.invoke(app, ["vehicle", "query", "--surname", "X", "--born", "1999-99-99"])
    one_line_error(bad_date, "invalid_vehicle_query")
    assert "--born '1999-99-99' is not a date" in bad_date.output


@pytest.mark.parametrize("category", ["vehicle", "records"])
def test_generating_into_a_missing_folder_is_one_line(tmp_path: Path, category: str) -> None:
    out = tmp_path / "no such folder" / "out.txt"
    refused = runner.invoke(app, [category, "generate", str(out), "--count", "2"])
    one_line_error(refused, "bad_input")
    assert f"cannot write {out}" in refused.output


def test_an_unreadable_vehicle_file_is_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "register.csv"
    binary.write_bytes(b"\xff\xfe\x00 not a CSV")
    node = ["--database-url", f"sqlite:///{tmp_path / 'node.sqlite'}"]
    refused = runner.invoke(app, ["vehicle", "import", str(binary), *node])
    assert refused.exit_code == 2 and not isinstance(refused.exception, Exception)
    assert "error (invalid_vehicle_import)" in refused.output


def test_an_unexpected_exception_is_one_line_unless_the_traceback_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(country: str) -> None:
        raise KeyError("layout")

    monkeypatch.setattr("prum.categories.vehicle.cli.Generator", broken)
    command = ["vehicle", "generate", str(tmp_path / "v.csv")]
    hidden = runner.invoke(app, command)
    one_line_error(hidden, "unexpected")
    assert "KeyError: 'layout'" in hidden.output and TRACEBACK_ENV in hidden.output

    monkeypatch.setenv(TRACEBACK_ENV, "1")
    shown = runner.invoke(app, command)
    assert isinstance(shown.exception, KeyError)


def test_an_os_error_no_command_expected_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(url: str) -> None:
        raise PermissionError(13, "Permission denied", "/var/prum/audit.sqlite")

    monkeypatch.setattr("prum.audit.cli.Statistics", denied)
    refused = runner.invoke(app, ["stats"])
    one_line_error(refused, "bad_input")
    assert "/var/prum/audit.sqlite: Permission denied" in refused.output


def test_a_long_error_is_not_wrapped_at_the_terminal_width(tmp_path: Path) -> None:
    directory = tmp_path / "a folder whose name is long enough to pass the terminal width"
    refused = runner.invoke(app, ["pki", "list", "--dir", str(directory)])
    one_line_error(refused, "bad_input")
    assert len(refused.output) > 100 and str(directory) in refused.output


def test_a_pki_folder_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    taken = tmp_path / "pki"
    taken.write_text("a file, not a folder")
    one_line_error(runner.invoke(app, ["pki", "init", "--dir", str(taken)]), "bad_input")


def test_an_audit_plug_in_without_its_methods_is_refused_in_words(tmp_path: Path) -> None:
    url = ["--database-url", f"sqlite:///{tmp_path / 'audit.sqlite'}", "--party", "AT"]
    assert runner.invoke(app, ["audit", "verify", *url]).exit_code == 0
    signer = runner.invoke(app, ["audit", "checkpoint", *url, "--signer", "os:getcwd"])
    one_line_error(signer, "invalid_audit_setup")
    assert "has no party, sign" in signer.output
    verifier = runner.invoke(app, ["audit", "verify", *url, "--verifier", "os:getcwd"])
    one_line_error(verifier, "invalid_audit_setup")


def test_an_unknown_audit_filter_is_refused_rather_than_an_empty_log(tmp_path: Path) -> None:
    url = ["--database-url", f"sqlite:///{tmp_path / 'audit.sqlite'}", "--party", "AT"]
    assert runner.invoke(app, ["audit", "verify", *url]).exit_code == 0
    refused = runner.invoke(app, ["audit", "show", *url, "--kind", "record_removed"])
    one_line_error(refused, "invalid_audit_setup")
    assert "record_deleted" in refused.output  # the kinds that exist are listed
    known = runner.invoke(app, ["audit", "show", *url, "--kind", "record_deleted", "--json"])
    assert known.exit_code == 0 and json.loads(known.stdout) == []


@pytest.mark.parametrize(
    ("data", "suffix"),
    [
        (b"\x89PNG\r\n\x1a\n....", ".png"),
        (b"\xff\xd8\xff\xe0....", ".jpg"),
        (b"\xff\xa0\xff\xa8....", ".wsq"),
        (b"II*\x00....", ".tif"),
        (b"something else", ".bin"),
    ],
)
def test_an_image_file_is_named_after_its_format(data: bytes, suffix: str) -> None:
    assert image_suffix(data) == suffix


def test_audit_show_prints_every_entry_whole_on_a_narrow_terminal(tmp_path: Path) -> None:
    import datetime as dt

    from prum.audit.events import AuditEvent
    from prum.audit.log import AuditLog

    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    log = AuditLog(url, party="AT")
    for n in range(3):
        log.append(
            AuditEvent(
                at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
                kind="core_data_requested",
                requesting_party="AT",
                requested_party="DE",
                category="finger",
                purpose="investigation",
                offence="1500 00",
                max_penalty_months=36,
                case_reference=f"AT/2026/LONG-CASE-REFERENCE-{n:04d}",
                user="u-4711",
                request_number=f"R-{n}",
            )
        )
    log.close()
    shown = runner.invoke(
        app, ["audit", "show", "--database-url", url, "--party", "AT"], env={"COLUMNS": "60"}
    )
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == "audit log, chain main: 3 entries, newest first"
    assert "case AT/2026/LONG-CASE-REFERENCE-0002" in lines[1] and "…" not in shown.stdout
    assert "core_data_requested  AT→DE  finger investigation" in lines[1]


def test_pki_list_and_the_router_directory_as_json_when_asked(tmp_path: Path) -> None:
    pki = ["--dir", str(tmp_path / "pki")]
    assert runner.invoke(app, ["pki", "init", *pki]).exit_code == 0
    assert runner.invoke(app, ["pki", "issue", "AT", "--role", "node", *pki]).exit_code == 0
    listed = runner.invoke(app, ["pki", "list", "--json", *pki])
    assert listed.exit_code == 0, listed.output
    [cert] = json.loads(listed.stdout)
    assert cert["party"] == "AT" and cert["valid_now"] and not cert["revoked"]
    table = runner.invoke(app, ["pki", "list", *pki], env={"COLUMNS": "80"})
    # The serial is typed back into `prum pki revoke`: folded on a narrow terminal, never cut.
    assert table.exit_code == 0 and "…" not in table.stdout
    assert cert["serial"][:8] in table.stdout

    directory = tmp_path / "directory.json"
    url = "https://at.police.example:8443/a-long-path-to-the-node"
    directory.write_text(json.dumps({"parties": {"AT": {"url": url, "offers": ["dna"]}}}))
    read = runner.invoke(app, ["router", "check-directory", str(directory), "--json"])
    assert read.exit_code == 0, read.output
    assert json.loads(read.stdout)["parties"]["AT"]["offers"] == ["dna"]
    shown = runner.invoke(app, ["router", "check-directory", str(directory)])
    assert "…" not in shown.stdout


def test_statistics_of_an_empty_log_say_so_rather_than_an_empty_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    assert runner.invoke(app, ["audit", "verify", "--database-url", url]).exit_code == 0
    shown = runner.invoke(app, ["stats", "--database-url", url, "--year", "2025"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("no statistics recorded for 2025 in sqlite:///")


def test_a_setting_out_of_range_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRUM_RECORDS_THRESHOLD", "7")
    node = ["--data-dir", str(tmp_path / "node")]
    refused = runner.invoke(app, ["records", "search", '{"surnames": ["Weber"]}', *node])
    one_line_error(refused, "bad_input")
    assert "threshold: Input should be less than or equal to 1 (given '7')" in refused.output
    assert "pydantic.dev" not in refused.output


def test_an_unusable_data_folder_is_named_not_the_file_being_written(tmp_path: Path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    out = tmp_path / "export.json"
    refused = runner.invoke(app, ["dna", "export", str(out), "--data-dir", str(blocker / "node")])
    one_line_error(refused, "bad_input")
    assert f"cannot use {blocker}" in refused.output and str(out) not in refused.output

"""Batches as national systems send them: NDJSON, one record or deletion a line, with
the samples inline (base64) or in files named by the line (a multipart part, or a file
beside the NDJSON file). A line that cannot be read becomes its error, refused alone."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from prum.errors import BadInput, InvalidRecord, PrumError
from prum.node.systems.contract import BatchLine, DeletionIn, RecordIn
from prum.node.systems.service import Line

_lines: TypeAdapter[RecordIn | DeletionIn] = TypeAdapter(BatchLine)
# Samples named by file are read up to this size (the interface's body limit).
MAX_FILE_BYTES = 40 * 1024 * 1024

FileLoader = Callable[[str], bytes]


def parse_line(number: int, text: str, load: FileLoader) -> Line:
    """One NDJSON line as a record or deletion, or the error that refuses it."""
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            data.setdefault("op", "upsert")  # a line without "op" is a record
            _attach_file(data, load)
        return _lines.validate_python(data)
    except (json.JSONDecodeError, RecursionError):
        return InvalidRecord(f"line {number} is not JSON")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}" for e in exc.errors()[:3]
        )
        return InvalidRecord(f"line {number}: {problems}")
    except PrumError as exc:
        return exc


def parse_lines(text: bytes, load: FileLoader) -> list[Line]:
    """Every line of a batch (blank lines count, so numbers match the sender's file)."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("a batch is UTF-8 text, one JSON object a line") from None
    return [
        parse_line(number, line, load)
        for number, line in enumerate(decoded.splitlines(), start=1)
        if line.strip()
    ]


def iter_file(path: Path) -> Iterator[Line]:
    """The lines of an NDJSON file, read as they are used; samples named by file are
    read from the file's folder (and nowhere else)."""
    folder = path.parent.resolve()

    def load(name: str) -> bytes:
        target = (folder / name).resolve()
        if not target.is_relative_to(folder) or not target.is_file():
            raise InvalidRecord(f"the sample names the file {name!r}, not found beside {path.name}")
        if target.stat().st_size > MAX_FILE_BYTES:
            raise InvalidRecord(f"the sample file {name!r} is larger than {MAX_FILE_BYTES} bytes")
        return target.read_bytes()

    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield parse_line(number, line, load)
    except UnicodeDecodeError:
        raise BadInput(
            f"{path} is not UTF-8 text (an NDJSON file, one JSON object a line)"
        ) from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None


def _attach_file(data: dict[str, Any], load: FileLoader) -> None:
    sample = data.get("sample")
    if not isinstance(sample, dict) or "file" not in sample:
        return
    name = sample.pop("file")
    if not isinstance(name, str) or not name:
        raise InvalidRecord("a sample's 'file' names a file")
    try:
        content = load(name)
    except KeyError:
        raise InvalidRecord(f"the sample names the file {name!r}, which was not sent") from None
    sample["data"] = base64.b64encode(content).decode()

"""``prum finger``: enrol ANSI/NIST-ITL transactions or images, search, delete."""

from __future__ import annotations

import base64
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from prum.categories.interface import Exposure, SubjectCategory
from prum.cliargs import (
    AsJson,
    DatabaseUrl,
    DataDir,
    Images,
    add_delete_command,
    cannot,
    console,
    fail,
    node_settings,
    print_candidates,
    progress,
)
from prum.errors import PrumError, UnreadableImage
from prum.federation.messages import Category, Probe

app = typer.Typer(
    help="The national AFIS: enrol tenprints and latents, search, delete.",
    no_args_is_help=True,
)
add_delete_command(app, Category.FINGER)

Files = Annotated[
    list[Path],
    typer.Argument(
        exists=True, dir_okay=False, help="ANSI/NIST-ITL transactions (Type-4/14) or images."
    ),
]
Position = Annotated[
    int,
    typer.Option(min=0, max=10, help="Finger position of a plain image (1-10; 0 unknown)."),
]


class Collection(StrEnum):
    """The two collections of an AFIS, so that a typo is refused before anything is read."""

    TENPRINT = "tenprint"
    LATENT = "latent"


def _format(data: bytes) -> Literal["ansi_nist", "image"]:
    return "ansi_nist" if data[:6] == b"1.001:" else "image"


def _matcher(data_dir: Path | None, database_url: str | None) -> Any:
    from prum.categories.finger.matcher import FingerMatcher

    return FingerMatcher(node_settings(data_dir, database_url))


@app.command("enroll")
def enroll(
    files: Files,
    collection: Annotated[
        Collection | None, typer.Option(help="Default: what the file says.")
    ] = None,
    category: Annotated[
        SubjectCategory | None, typer.Option(help="Data-subject category (default suspect).")
    ] = None,
    position: Position = 0,
    provenance: Annotated[str, typer.Option(help="Where the prints come from.")] = "national",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Enrol prints, one record per file. Every file is read and checked first: if one
    is refused, nothing is stored."""
    try:
        matcher = _matcher(data_dir, database_url)
        try:
            samples = []
            for file in files:
                data = file.read_bytes()
                try:
                    matcher.fingers(data, _format(data), position)
                except PrumError as exc:
                    raise type(exc)(f"{file}: {exc.message}", **exc.details) from None
                samples.append(data)
            references = []
            with progress() as bar:
                task = bar.add_task("enrolling", total=len(samples))
                for data in samples:
                    record: dict[str, Any] = {"provenance": provenance, "position": position}
                    if collection:
                        record["collection"] = collection.value
                    if category:
                        record["category"] = category
                    references.append(matcher.enroll(data, **record))
                    bar.advance(task)
        finally:
            matcher.close()
    except OSError as exc:
        raise cannot(exc, "read") from None
    except PrumError as exc:
        raise fail(exc) from None
    for file, reference in zip(files, references, strict=True):
        # One line per file, never wrapped, so that scripts can read it back.
        console.print(f"{file}: {reference}", highlight=False, soft_wrap=True)
    console.print(f"enrolled {len(references):,} fingerprint records")


@app.command("search")
def search(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Probe transaction or image.")
    ],
    search_type: Annotated[
        str | None, typer.Option("--type", help="TP/TP or LT/TP (default: from the probe).")
    ] = None,
    max_candidates: Annotated[int, typer.Option(min=1, max=100, help="Candidates.")] = 10,
    images: Images = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Search this node's AFIS (every subject category, no age limit: a national search);
    prints the candidate list for an examiner to verify, with --images the enrolled
    prints as files to compare side by side."""
    try:
        data = file.read_bytes()
        if not data:
            # Checked here: an empty probe never reaches the matcher's message checks.
            raise UnreadableImage(f"{file} is empty (0 bytes)")
        matcher = _matcher(data_dir, database_url)
        try:
            result = matcher.search(
                Probe(format=_format(data), data=base64.b64encode(data)),
                max_candidates=max_candidates,
                exposure=Exposure(),  # everything: a national search
                search_type=search_type,
            )
        finally:
            matcher.close()
    except OSError as exc:
        raise cannot(exc, "read", file) from None
    except PrumError as exc:
        raise fail(exc) from None
    print_candidates(result, as_json=as_json, images=images)

"""What every ``prum`` subcommand shares: the node's options, settings from them, how an
error is shown, a progress bar. Each category's ``cli.py`` builds on these."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from typer.core import TyperGroup
from typer.exceptions import TyperException

from prum.config import Settings
from prum.errors import BadInput, PrumError
from prum.federation.messages import Category

CPUS = os.cpu_count() or 1
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Node data folder (env PRUM_DATA_DIR).")
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="SQLAlchemy URL of the node database (env PRUM_DATABASE_URL)."
    ),
]
Country = Annotated[
    str | None, typer.Option("--country", help="This node's country code (env PRUM_COUNTRY).")
]
Workers = Annotated[int, typer.Option("--workers", "-j", help="Worker processes.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def node_settings(
    data_dir: Path | None = None, database_url: str | None = None, country: str | None = None
) -> Settings:
    """The node's settings (environment, PRUM_*) with the options given on top."""
    update: dict[str, Any] = {}
    if data_dir is not None:
        update["data_dir"] = data_dir
    if database_url:
        update["database_url"] = database_url
    if country:
        update["country"] = country
    return Settings(**update)


def fail(exc: PrumError) -> typer.Exit:
    """Show a PrumError (with the line-by-line errors of an import) and exit with 2."""
    # One line, never wrapped at the terminal's width: a person reads it whole and a
    # script can grep it. Messages of lower layers (database drivers) may hold newlines.
    message = " ".join(exc.message.split())
    err.print(
        f"[bold red]error[/] ({exc.code}): {escape(message)}",
        highlight=False,
        soft_wrap=True,
    )
    for item in exc.details.get("errors", [])[:50]:
        if isinstance(item, dict) and "message" in item:
            where = f"line {item['line']}" if item.get("line") else "item"
            field = f", field {item['field']}" if item.get("field") else ""
            err.print(f"  {where}{field}: {item['message']}", markup=False, highlight=False)
    return typer.Exit(code=2)


def validation_words(exc: ValidationError) -> str:
    """pydantic's errors in a few words: field, rule and value, without its URLs."""
    words = []
    for e in exc.errors():
        field = ".".join(str(part) for part in e["loc"])
        given = f" (given {e['input']!r})" if isinstance(e.get("input"), str | int | float) else ""
        words.append(f"{field + ': ' if field else ''}{e['msg']}{given}")
    return "; ".join(words)


def cannot(exc: OSError, verb: str, path: Path | None = None) -> typer.Exit:
    """An OSError as one line (exit 2) naming the file it is about, which is not always
    ``path``: the node's data folder or database may be what could not be opened."""
    about = exc.filename if exc.filename is not None else path
    if path is not None and about is not None and Path(about) != path:
        verb = "use"
    where = "" if about is None else f" {about}"
    return fail(BadInput(f"cannot {verb}{where}: {exc.strerror or exc}"))


# Set to 1 to let an unexpected exception show its traceback (for a bug report).
TRACEBACK_ENV = "PRUM_TRACEBACK"


class PrumGroup(TyperGroup):
    """The root ``prum`` group: an exception that no command turned into a message
    still ends as one line and exit code 2, never as a traceback on an officer's screen."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # typer words these itself
            raise
        except PrumError as exc:
            raise fail(exc) from None
        except ValidationError as exc:
            # Settings are read as a command starts: a PRUM_* variable out of range ends here.
            raise fail(BadInput(f"invalid {exc.title}: {validation_words(exc)}")) from None
        except Exception as exc:
            if os.environ.get(TRACEBACK_ENV):
                raise
            if isinstance(exc, OSError) and exc.strerror:
                raise cannot(exc, "use") from None
            err.print(
                f"[bold red]error[/] (unexpected): {type(exc).__name__}:"
                f" {escape(' '.join(str(exc).split()))} (prum did not expect this;"
                f" {TRACEBACK_ENV}=1 shows where it happened, for a bug report)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(code=2) from None


def progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
    )


Images = Annotated[
    Path | None,
    typer.Option(
        "--images",
        file_okay=False,
        help="Write the candidates' images to this folder (created if needed).",
    ),
]


def print_candidates(result: Any, *, as_json: bool = False, images: Path | None = None) -> None:
    """A MatchResult for an examiner: a table of the candidates, or with ``as_json`` every
    field as JSON (images base64-encoded). Images are written to files only into the
    folder ``images`` names; a terminal never shows them."""
    from prum.clioutput import candidate_table, candidates_json, write_images

    try:
        written = write_images(result.candidates, images) if images is not None else {}
    except OSError as exc:
        raise cannot(exc, "write the images to", images) from None
    if as_json:
        typer.echo(json.dumps(candidates_json(result, written), indent=2, ensure_ascii=False))
        return
    candidate_table(console, result)
    with_image = sum(1 for c in result.candidates if c.image)
    if images is not None:
        console.print(
            f"{len(written)} image(s) written to {images}, named RANK-REFERENCE",
            markup=False,
            soft_wrap=True,
        )
    elif with_image:
        console.print(
            f"{with_image} candidate image(s) not shown: add --images FOLDER to write them"
            " to files for a side-by-side comparison",
            markup=False,
            soft_wrap=True,
        )


def add_delete_command(app: typer.Typer, category: Category) -> None:
    """``prum CATEGORY delete REFERENCE --reason WHY``, alike for every category."""

    @app.command("delete")
    def delete(
        reference: Annotated[str, typer.Argument(help="The record's reference number.")],
        reason: Annotated[str, typer.Option(help="Why (erasure, retention, ...); logged.")],
        data_dir: DataDir = None,
        database_url: DatabaseUrl = None,
    ) -> None:
        """Erase a record from the store and the index (the erasure itself is logged)."""
        from prum.node.categories import make_matcher

        try:
            matcher = make_matcher(category, node_settings(data_dir, database_url))
            try:
                matcher.delete(reference, reason=reason)
            finally:
                matcher.close()
        except PrumError as exc:
            raise fail(exc) from None
        console.print(f"deleted {reference}")

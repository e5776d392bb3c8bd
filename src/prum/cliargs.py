"""What every ``prum`` subcommand shares: the node's options, settings from them, how an
error is shown, a progress bar. Each category's ``cli.py`` builds on these."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from prum.config import Settings
from prum.errors import PrumError
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
    err.print(f"[bold red]error[/] ({exc.code}): {exc.message}", highlight=False)
    for item in exc.details.get("errors", [])[:50]:
        if isinstance(item, dict) and "message" in item:
            where = f"line {item['line']}" if item.get("line") else "item"
            field = f", field {item['field']}" if item.get("field") else ""
            err.print(f"  {where}{field}: {item['message']}", highlight=False)
    return typer.Exit(code=2)


def progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
    )


def print_candidates(result: Any) -> None:
    """A MatchResult as JSON: the gallery size and the candidates for an examiner."""
    import json

    answer = [c.model_dump(mode="json", exclude_none=True) for c in result.candidates]
    console.print_json(json.dumps({"gallery_size": result.gallery_size, "candidates": answer}))


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

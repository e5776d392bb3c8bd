"""``prum node import``: national-system exports applied on the interface's own code path
(NationalSystems), in this process, with a progress bar and a summary table."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from rich.table import Table

from prum.cliargs import CPUS, console, err, progress
from prum.federation.messages import Category
from prum.node.config import NodeConfig
from prum.node.core import Node
from prum.node.systems.accounts import SystemAccount
from prum.node.systems.batch import count_lines, iter_file
from prum.node.systems.contract import Outcome, RecordResult
from prum.node.systems.service import Line, NationalSystems

SHOWN_REFUSALS = 20


def run_import(config: Path, files: list[Path], *, system: str, workers: int, as_json: bool) -> int:
    """Apply every file; exit code 0 when nothing was refused, 1 otherwise."""
    cfg = NodeConfig.load(config)
    node = Node(cfg)
    systems = NationalSystems(node, workers=workers or min(CPUS, 4))
    account = SystemAccount(system, frozenset(Category))
    counts: Counter[str] = Counter()
    refusals: list[tuple[str, RecordResult]] = []
    try:
        total = sum(count_lines(path) for path in files)
        with progress() as bar:
            task = bar.add_task("records", total=total)
            for path in files:
                for result in systems.apply(_lines(path), account):
                    counts[result.outcome.value] += 1
                    if result.outcome is Outcome.REFUSED:
                        refusals.append((path.name, result))
                    if as_json:
                        print(json.dumps({"file": str(path), **result.model_dump(mode="json")}))
                    bar.advance(task)
    finally:
        systems.close()
        node.close()
    if not as_json:
        _summary(counts, refusals)
    return 1 if refusals else 0


def _lines(path: Path) -> Iterator[Line]:
    yield from iter_file(path)


def _summary(counts: Counter[str], refusals: list[tuple[str, RecordResult]]) -> None:
    table = Table(title="records applied")
    table.add_column("outcome")
    table.add_column("records", justify="right")
    for outcome in Outcome:
        table.add_row(outcome.value, f"{counts[outcome.value]:,}")
    console.print(table)
    for name, result in itertools.islice(refusals, SHOWN_REFUSALS):
        assert result.error is not None
        err.print(
            f"  {name} line {result.line}: {result.error.message}", markup=False, highlight=False
        )
    if len(refusals) > SHOWN_REFUSALS:
        err.print(f"  ... and {len(refusals) - SHOWN_REFUSALS} more refused (see --json)")
    if refusals:
        err.print(
            "the refused lines changed nothing; fix them and run the import again"
            " (lines already applied are found unchanged)"
        )

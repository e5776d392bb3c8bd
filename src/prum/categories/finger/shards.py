"""The finger index split across processes: scale-out for a national AFIS.

A shard is a :class:`prum.categories.finger.index.FingerIndex` of its own, saved in
its own folder and served by its own process; a card (record) lives whole in the shard
``record % shards``, so its fingers are fused where they are. A search goes to every
shard at once and their answers are merged: each shard ranks its own cards by the
same scores, so the merged top is the top of the whole gallery. Shards cut the
memory and the time of a search per process; on more cores (or machines) they search
in parallel (docs/fingerprints.md has the sizing).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from prum.categories.finger.index import (
    CardHit,
    FingerIndex,
    Hit,
    IndexParams,
    Scope,
)
from prum.categories.finger.match import Cylinders, MccParams
from prum.errors import StorageError


def shard_of(record: int, shards: int) -> int:
    """The shard that holds a record's fingers."""
    return record % shards


@dataclass(frozen=True)
class ShardStats:
    fingers: int
    cylinders: int
    index_bytes: int  # in memory, by the index's own count (FingerIndex.nbytes)
    disk_bytes: int  # the memory-mapped row store
    rss_anon: int  # the process's private memory, from /proc (0 where unknown)
    rss_file: int  # file pages it has mapped in: the row store pages searches read
    load_s: float


def _memory() -> tuple[int, int]:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0, 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)

    def kib(name: str) -> int:
        return int(fields.get(name, "0 kB").split()[0]) * 1024

    return kib("RssAnon"), kib("RssFile")


def _serve(conn: Connection, directory: str, mcc: MccParams, params: IndexParams) -> None:
    """A shard's process: load its index, then answer requests until told to stop."""
    started = time.perf_counter()
    try:
        index, _ = FingerIndex.load(Path(directory), mcc, params)
    except (OSError, ValueError, KeyError, StorageError) as exc:
        conn.send(("error", f"cannot load the finger shard in {directory}: {exc}"))
        return
    load_s = time.perf_counter() - started
    conn.send(("ready", None))
    while True:
        try:
            op, args = conn.recv()
        except EOFError:
            return
        try:
            if op == "stop":
                return
            if op == "cards":
                probes, max_candidates, latent, cards = args
                answer: Any = index.search_cards(
                    probes, max_candidates=max_candidates, latent=latent, cards=cards
                )
            elif op == "search":
                probe, max_candidates, latent, position, shortlist = args
                answer = index.search(
                    probe,
                    max_candidates=max_candidates,
                    allowed=Scope(position, latent),
                    shortlist=shortlist,
                )
            elif op == "exhaustive":
                probe, max_candidates, latent, position = args
                answer = index.exhaustive(
                    probe, max_candidates=max_candidates, allowed=Scope(position, latent)
                )
            elif op == "stats":
                anon, file = _memory()
                answer = ShardStats(
                    len(index),
                    index.cylinders,
                    index.nbytes(),
                    index.disk_nbytes(),
                    anon,
                    file,
                    load_s,
                )
            else:
                raise ValueError(f"unknown shard request {op!r}")
            conn.send(("ok", answer))
        except Exception as exc:  # the caller gets the failure; the shard serves on
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ShardedIndex:
    """Shards saved by :meth:`FingerIndex.save` in ``directories``, one process each."""

    def __init__(
        self,
        directories: list[Path],
        mcc: MccParams | None = None,
        params: IndexParams | None = None,
    ):
        if not directories:
            raise ValueError("a sharded index needs at least one shard")
        # Spawned, not forked: FAISS and BLAS keep threads a fork would copy mid-state.
        context = multiprocessing.get_context("spawn")
        self._conns: list[Connection] = []
        self._processes: list[Any] = []
        for directory in directories:
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_serve,
                args=(theirs, str(directory), mcc or MccParams(), params or IndexParams()),
                daemon=True,
                name=f"finger-shard-{len(self._processes)}",
            )
            process.start()
            theirs.close()
            self._conns.append(ours)
            self._processes.append(process)
        try:
            self._gather()  # each shard says it has loaded
        except StorageError:
            self.close()
            raise

    @property
    def shards(self) -> int:
        return len(self._conns)

    def _ask(self, op: str, args: Any) -> list[Any]:
        for conn in self._conns:
            conn.send((op, args))
        return self._gather()

    def _gather(self) -> list[Any]:
        answers: list[Any] = []
        problems: list[str] = []
        for k, conn in enumerate(self._conns):
            try:
                status, answer = conn.recv()
            except (EOFError, OSError):
                status, answer = "error", "its process stopped"
            if status == "error":
                problems.append(f"finger shard {k}: {answer}")
            answers.append(answer)
        if problems:
            raise StorageError("; ".join(problems))
        return answers

    def search_cards(
        self,
        probes: list[tuple[int, Cylinders]],
        *,
        max_candidates: int,
        latent: bool | None = False,
        cards: int | None = None,
    ) -> list[CardHit]:
        """FingerIndex.search_cards on every shard, merged (tenprints by default)."""
        found = [
            h for hits in self._ask("cards", (probes, max_candidates, latent, cards)) for h in hits
        ]
        return sorted(found, key=lambda h: -h.score)[:max_candidates]

    def search(
        self,
        probe: Cylinders,
        *,
        max_candidates: int,
        position: int = 0,
        latent: bool | None = False,
        shortlist: int | None = None,
    ) -> list[Hit]:
        """One finger (position 0: unknown) against every finger it can be."""
        answers = self._ask("search", (probe, max_candidates, latent, position, shortlist))
        found = [h for hits in answers for h in hits]
        return sorted(found, key=lambda h: -h.comparison.score)[:max_candidates]

    def exhaustive(
        self,
        probe: Cylinders,
        *,
        max_candidates: int,
        position: int = 0,
        latent: bool | None = False,
    ) -> list[Hit]:
        """Every finger compared in full, the shards at once (the reference answer)."""
        answers = self._ask("exhaustive", (probe, max_candidates, latent, position))
        found = [h for hits in answers for h in hits]
        return sorted(found, key=lambda h: -h.comparison.score)[:max_candidates]

    def stats(self) -> list[ShardStats]:
        return list(self._ask("stats", None))

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(("stop", None))
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        for conn in self._conns:
            conn.close()
        self._conns, self._processes = [], []

    def __enter__(self) -> ShardedIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

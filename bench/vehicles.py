"""Benchmark of a national vehicle register: bulk load, then lookups by plate, VIN and
holder, against the same lookups with the indexes switched off.

    nice .venv/bin/python bench/vehicles.py [--vehicles 50000000] [--queries 1000]

Registrations come from prum.categories.vehicle.generate (German layout by default; VINs with
check digits, holder histories, signals), made by worker processes and written by the
parent through VehicleStore.bulk_load (one transaction per chunk, indexes built once
at the end) into one SQLite node store. Lookups go through VehicleMatcher.query, the
path a real query takes (normalisation, lookup, holder of the day, VehicleData), one
thread, with the plate typed differently from the register (lower case, spaces) and
the holder's names as given. The naive baseline runs the same lookups with SQLite's
NOT INDEXED (a scan of the whole table) on a few of the same probes and must return the
same registrations. Writes bench/results/vehicles.json and a section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from prum.categories.vehicle.generate import Generator
from prum.categories.vehicle.matcher import VehicleMatcher
from prum.categories.vehicle.normalise import name_key, plate_key
from prum.categories.vehicle.record import Role
from prum.categories.vehicle.store import StoredVehicle, VehicleStore
from prum.config import Settings
from prum.federation.messages import VehicleQuery

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json, write_section

ENROLLED_AT = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.000000")


def _make_chunk(job: tuple[str, int, int, int, int]) -> tuple[list[Any], list[Any]]:
    country, seed, index, size, first_id = job
    chunk = Generator(country).chunk(size, np.random.default_rng([seed, index]))
    return chunk.bulk_rows(first_id=first_id, country=country, enrolled_at=ENROLLED_AT)


def percentile_ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 3)


def typed_plate(plate: str, rng: random.Random) -> str:
    """The plate as an officer abroad might type it."""
    text = plate.replace("-", rng.choice([" ", "", "-", "."]))
    return text.lower() if rng.random() < 0.5 else text


def load(store: VehicleStore, args: argparse.Namespace) -> dict[str, Any]:
    """Bulk-load up to ``args.vehicles``; stops feeding chunks after ``args.budget_min``
    minutes (the indexes are still built over what was loaded)."""
    n, size = args.vehicles, args.chunk
    jobs = [
        (args.country, args.seed, i, min(size, n - start), start + 1)
        for i, start in enumerate(range(0, n, size))
    ]
    started = time.perf_counter()
    last = [started]
    loaded = [0]

    def progress(done: int) -> None:
        loaded[0] = done
        now = time.perf_counter()
        if now - last[0] > 30 or done == n:
            last[0] = now
            rate = done / (now - started)
            print(f"  loaded {done:,} ({rate:,.0f}/s, {(n - done) / rate / 60:.0f} min left)")
            sys.stdout.flush()

    def chunks(pool: Any) -> Iterator[tuple[list[Any], list[Any]]]:
        # At most two chunks in flight per worker: generation may outrun the writer.
        pending: deque[Any] = deque()
        todo = iter(jobs)
        for job in todo:
            pending.append(pool.apply_async(_make_chunk, (job,)))
            if len(pending) >= 2 * args.workers:
                break
        while pending:
            rows = pending.popleft().get()
            if time.perf_counter() - started > args.budget_min * 60:
                print(f"  time budget of {args.budget_min} min spent: stopping the load")
                return
            for job in todo:
                pending.append(pool.apply_async(_make_chunk, (job,)))
                break
            yield rows

    with mp.get_context("spawn").Pool(args.workers) as pool:
        index_s = store.bulk_load(chunks(pool), progress=progress)
    total_s = time.perf_counter() - started
    return {
        "vehicles_loaded": loaded[0],
        "load_s": round(total_s, 1),
        "index_build_s": round(index_s, 1),
        "load_rows_per_s": round(loaded[0] / total_s),
        "stopped_by_time_budget": loaded[0] < n,
    }


def probes(
    store: VehicleStore, n: int, count: int, rng: random.Random
) -> list[tuple[str, VehicleQuery, str | None]]:
    """(kind, query, expected reference or None for a miss)."""
    ids = rng.sample(range(1, n + 1), min(n, count))
    out: list[tuple[str, VehicleQuery, str | None]] = []
    vehicles: list[StoredVehicle] = []
    for start in range(0, len(ids), 500):
        vehicles.extend(store.vehicles(ids[start : start + 500]))
    for v in vehicles:
        out.append(("plate", VehicleQuery(plate=typed_plate(v.plate, rng)), v.reference))
        out.append(("vin", VehicleQuery(vin=v.vin.lower()), v.reference))
        holders = [p for p in v.parties if p.role == Role.HOLDER]
        h = rng.choice(holders)
        query = VehicleQuery(
            holder_surname=h.surname.upper(),
            holder_first_names=h.first_names,
            holder_date_of_birth=h.date_of_birth,
            at=h.since,
        )
        out.append(("holder", query, v.reference))
    # Misses: plates and VINs that are not registered (almost surely).
    for _ in range(max(1, count // 10)):
        out.append(("plate", VehicleQuery(plate=f"ZZ-Q {rng.randint(1, 9999)}"), None))
        out.append(
            ("vin", VehicleQuery(vin="WVWZZZ1KZ" + str(rng.randint(10**7, 10**8 - 1))), None)
        )
    rng.shuffle(out)
    return out


def naive_ids(store: VehicleStore, kind: str, query: VehicleQuery, limit: int) -> list[int]:
    """The lookup of VehicleStore without any index: a scan of the whole table."""
    with store.engine.connect() as conn:
        if kind == "plate":
            sql = (
                "SELECT id FROM vehicle_records NOT INDEXED WHERE plate_key = ? ORDER BY id LIMIT ?"
            )
            params: tuple[Any, ...] = (plate_key(query.plate or ""), limit)
        elif kind == "vin":
            sql = "SELECT id FROM vehicle_records NOT INDEXED WHERE vin = ? ORDER BY id LIMIT ?"
            params = ((query.vin or "").upper(), limit)
        else:
            on = (query.at or dt.date.today()).isoformat()
            sql = (
                "SELECT DISTINCT vehicle_id FROM vehicle_parties NOT INDEXED"
                " WHERE surname_key = ? AND first_names_key = ? AND date_of_birth = ?"
                " AND since <= ? AND (until IS NULL OR until > ?) ORDER BY vehicle_id LIMIT ?"
            )
            params = (
                name_key(query.holder_surname or ""),
                name_key(query.holder_first_names or ""),
                query.holder_date_of_birth.isoformat() if query.holder_date_of_birth else None,
                on,
                on,
                limit,
            )
        return [int(r[0]) for r in conn.exec_driver_sql(sql, params).all()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vehicles", type=int, default=50_000_000)
    parser.add_argument("--queries", type=int, default=1000, help="vehicles looked up 3 ways")
    parser.add_argument("--naive", type=int, default=2, help="probes per kind without index")
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--budget-min", type=float, default=1e9, help="stop loading after")
    parser.add_argument("--country", default="DE")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--dir", type=Path, default=None, help="keep the database here")
    parser.add_argument("--reuse", action="store_true", help="query an already loaded --dir")
    parser.add_argument("--no-report", action="store_true", help="do not write results")
    args = parser.parse_args()
    n = args.vehicles
    work = args.dir or Path(tempfile.mkdtemp(prefix="prum-vehicle-bench-"))
    settings = Settings(country=args.country, data_dir=work)
    print(f"{n:,} vehicles ({args.country} layout) in {settings.resolved_database_url()}")
    store = VehicleStore(settings.resolved_database_url(), country=args.country)
    figures: dict[str, Any] = {}
    if args.reuse:
        n = store.max_id()
        previous = Path(__file__).parent / "results" / "vehicles.json"
        if previous.exists():  # keep the load figures of the run that built this store
            earlier = json.loads(previous.read_text())
            if earlier.get("vehicles") == n:
                keys = ("vehicles_loaded", "load_s", "index_build_s", "load_rows_per_s")
                figures = {k: earlier[k] for k in keys if k in earlier}
                figures["stopped_by_time_budget"] = earlier.get("stopped_by_time_budget")
    else:
        if store.count():
            sys.exit(f"{work} already holds vehicles; use --reuse or another --dir")
        figures = load(store, args)
        n = figures["vehicles_loaded"]
        print(f"  {figures}")
    db_file = work / "gallery.sqlite"
    size_bytes = db_file.stat().st_size if db_file.exists() else None

    matcher = VehicleMatcher(settings)
    rng = random.Random(args.seed)
    queries = probes(store, n, args.queries, rng)
    for _kind, query, _ in queries[:20]:  # warm the caches a little, as a running node is
        matcher.query(query, max_candidates=20)
    times: dict[str, list[float]] = {"plate": [], "vin": [], "holder": []}
    # CPU time of this process per query: what the lookup costs when the two cores
    # are not shared (the wall time includes waiting for other work on the machine).
    cpu: dict[str, list[float]] = {k: [] for k in times}
    found = {k: 0 for k in times}
    asked = {k: 0 for k in times}
    empty_misses = 0
    for kind, query, expected in queries:
        t, c = time.perf_counter(), time.process_time()
        result = matcher.query(query, max_candidates=20)
        times[kind].append(time.perf_counter() - t)
        cpu[kind].append(time.process_time() - c)
        refs = [c.reference for c in result.candidates]
        if expected is None:
            empty_misses += not refs
        else:
            asked[kind] += 1
            found[kind] += expected in refs

    naive: dict[str, list[float]] = {k: [] for k in times}
    agree, compared = 0, 0
    for kind in times:
        picked = [(q, e) for k, q, e in queries if k == kind and e is not None][: args.naive]
        for query, _ in picked:
            t = time.perf_counter()
            scanned = naive_ids(store, kind, query, 20)
            naive[kind].append(time.perf_counter() - t)
            if kind == "plate":
                indexed = store.ids_by_plate(plate_key(query.plate or ""), limit=20)
            elif kind == "vin":
                indexed = store.ids_by_vin((query.vin or "").upper(), limit=20)
            else:
                indexed = store.ids_by_party(
                    name_key(query.holder_surname or ""),
                    first_names_key=name_key(query.holder_first_names or ""),
                    date_of_birth=query.holder_date_of_birth,
                    on=query.at or dt.date.today(),
                    limit=20,
                )
            compared += 1
            agree += scanned == indexed
            print(f"  naive {kind}: {naive[kind][-1]:.1f} s, same answer: {scanned == indexed}")
    matcher.close()

    p95 = {k: percentile_ms(v, 95) for k, v in times.items()}
    result = {
        "vehicles": n,
        "parties": None,
        "country_layout": args.country,
        "database": "sqlite",
        "database_bytes": size_bytes,
        **figures,
        "queries": {k: len(v) for k, v in times.items()},
        "lookup_p95_ms": max(p95.values()),
        "lookup_p95_ms_by_kind": p95,
        "lookup_p50_ms_by_kind": {k: percentile_ms(v, 50) for k, v in times.items()},
        "lookup_max_ms_by_kind": {k: percentile_ms(v, 100) for k, v in times.items()},
        "lookup_cpu_p95_ms_by_kind": {k: percentile_ms(v, 95) for k, v in cpu.items()},
        "found": {k: f"{found[k]}/{asked[k]}" for k in times},
        "misses_answered_empty": empty_misses,
        "naive_ms_by_kind": {k: [round(t * 1000, 1) for t in v] for k, v in naive.items()},
        "naive_equals_indexed": f"{agree}/{compared}",
        "load_average": round(os.getloadavg()[0], 2),
    }
    with store.engine.connect() as conn:
        result["parties"] = int(
            conn.exec_driver_sql("SELECT max(id) FROM vehicle_parties").scalar_one() or 0
        )
    store.close()
    for key, value in result.items():
        print(f"  {key}: {value}")
    if args.no_report:
        return
    write_json("vehicles", result)
    naive_rows = "\n".join(
        f"| {k} | {p95[k]} ms | "
        + ", ".join(
            f"{t / 1000:.1f} s" if t >= 1000 else f"{t:.1f} ms"
            for t in result["naive_ms_by_kind"][k]
        )
        + " |"
        for k in times
    )
    p50 = result["lookup_p50_ms_by_kind"]
    cpu95 = result["lookup_cpu_p95_ms_by_kind"]
    found = result["found"]
    load_line = (
        f"| bulk load (2 generator processes, one writer) | {figures['load_s']} s,"
        f" {figures['load_rows_per_s']:,} vehicles/s, of which index build"
        f" {figures['index_build_s']} s |\n"
        if figures
        else ""
    )
    write_section(
        "vehicles",
        f"""## Vehicle register (bench/vehicles.py)

{n:,} synthetic registrations ({args.country} plate layout; {result["parties"]:,} holder
and owner periods) in one SQLite node store of
{(size_bytes or 0) / 2**30:.1f} GiB. Lookups through `VehicleMatcher.query`
(normalisation, indexed lookup, holder of the day, `VehicleData`), one thread; plates
typed as an officer abroad might (lower case, other separators).

| measure | value |
|---|---|
{load_line}| lookups p50 / p95, plate | {p50["plate"]} / {p95["plate"]} ms |
| lookups p50 / p95, VIN | {p50["vin"]} / {p95["vin"]} ms |
| lookups p50 / p95, holder (names, birth date, on a date) | {p50["holder"]} / {p95["holder"]} ms |
| CPU time per lookup p95, plate / VIN / holder | {" / ".join(map(str, cpu95.values()))} ms |
| target found, plate / VIN / holder | {found["plate"]} / {found["vin"]} / {found["holder"]} |
| unregistered plates and VINs answered empty | {empty_misses} |
| naive answer = indexed answer | {result["naive_equals_indexed"]} |

Naive baseline, same table, same probes, `NOT INDEXED` (a full scan):

| lookup | indexed p95 | naive, each probe |
|---|---|---|
{naive_rows}

Load average at the end: {result["load_average"]} (2 cores shared with other work).
""",
    )


if __name__ == "__main__":
    main()

"""Benchmark of the face gallery's vector index: exact vs approximate search.

For each gallery size: build time, RAM, single-thread top-50 latency of the exact
scan and of the approximate index on the same probes, with and without an exposure
rule, mate recall, threshold recall, bytes per template; then the saved index is
loaded cold in a fresh process that searches 1,000 times (RSS measured after) and
takes 1,000 inserts and 1,000 deletes, each checked by the next search.

    .venv/bin/python bench/gallery_search.py --sizes 1000000,10000000,30000000 \
        [--keep DIR] [--sweep 1024:4,2048:4]

Probes are held-out photos of enrolled people (bench/synthetic.py). The ground truth
is a batched exact scan (``VectorIndex.search_exact_many``) of the same rows in the
same run. Metrics:

- mate recall: of the (probe, mate) pairs where exact search puts a photo of the
  probe's person in its top 50, the share the approximate top 50 also contains;
- threshold recall: of the gallery entries the exact search finds within the decision
  distance 0.6, the share the approximate top 50 also contains;
- speed-up: exact p50 latency / approximate p50 latency.

``--keep DIR`` keeps each built gallery (a 30M one is 15 GB of float rows plus the
index) and reuses it on the next run; its build time is the one measured when built.
Index settings come from ``prum.config.Settings().index``, so ``PRUM_INDEX__*``
environment variables can override them for experiments. Writes
bench/results/gallery_search.json and a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from prum.categories.face.config import IndexSettings
from prum.categories.face.index import VectorIndex
from prum.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, write_json, write_section
from synthetic import REAL_DLIB, distance_percentiles, gallery_chunks

K = 50
REPEATS = 3  # timed runs per probe; the fastest counts (see timed())
DECISION_DISTANCE = 0.6  # dlib's published operating point (FaceSettings)
HUNGARY = 30_000_000
MACHINE_RAM_GIB = 24
# Targets (at 1M); never lowered: a miss is printed as MISSED with the number.
TARGETS = {
    "approx_p95_ms": ("<=", 2.0),
    "speedup": (">=", 20.0),
    "mate_recall": (">=", 0.999),
    "threshold_recall": (">=", 0.99),
}
# Targets at 30M (issue 27): searches carry the exposure rule.
HUNGARY_TARGETS = {
    "filtered_approx_p95_ms": ("<=", 10.0),
    "serve_p95_ms": ("<=", 10.0),
    "filtered_mate_recall": (">=", 0.995),
    "filtered_threshold_recall": (">=", 0.99),
    "mate_recall": (">=", 0.995),
    "threshold_recall": (">=", 0.99),
    "rss_gib": ("<=", 8.0),
    "build_s": ("<=", 3 * 3600.0),
    "load_s": ("<=", 60.0),
    "inserted_found_by_next_search": (">=", 1000),
    "deleted_gone_from_next_search": (">=", 1000),
}
# Exposure rule used for the filtered measurement: two categories, adults only.
FILTER_CATEGORIES = (0, 1)
ADULT_BORN_BEFORE = 20_400 - int(18 * 365.25)
RULE: dict[str, Any] = {
    "allowed_categories": FILTER_CATEGORIES,
    "born_before_days": ADULT_BORN_BEFORE,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def proc_status() -> dict[str, int]:
    """Resident memory of this process in bytes (anonymous, file-backed, peak)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


class Throttled:
    """A rebuild progress callback that logs at most every 30 seconds."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, step: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= 30 or done == total or step == "train":
            self.last = now
            log(f"  {step}: {done:,}/{total:,}")


def timed(fn: Any, *args: Any, repeats: int = REPEATS, **kwargs: Any) -> tuple[Any, float]:
    """Result and milliseconds of the fastest of REPEATS calls.

    The machine's two cores are shared with other work (load averages of 10-15 on
    2026-12-07); the best of a few runs of the same probe discounts the other
    processes while keeping the spread between probes (which is what p95 is about).
    The same rule applies to exact and approximate search and the serving process.
    """
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return result, best * 1000


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def build_gallery(
    n: int, queries: int, workdir: Path, settings: IndexSettings, keep: bool = False
) -> dict[str, Any]:
    """Stream a synthetic gallery into a VectorIndex and build its ANN structure.

    With ``keep`` the built index is saved in ``workdir`` with the ground truth of the
    probes (bench.npz), and a later run with the same ``workdir`` loads it instead of
    building again (its build time is the one measured when it was built).
    """
    saved = workdir / "bench.npz"
    marker = workdir / "building"  # another run is building this gallery: wait for it
    waited = 0.0
    while keep and marker.exists():
        if waited % 300 == 0:
            log(f"  waiting for the build in progress in {workdir} ...")
        time.sleep(30)
        waited += 30
    if keep and saved.exists():
        index = VectorIndex.open(workdir, 128, settings)
        info = index.meta["bench"]
        if len(index) != n:
            raise SystemExit(f"{workdir} holds {len(index):,} templates, not {n:,}")
        log(f"  loaded the index built on {info['built_at']} from {workdir}")
        with np.load(saved) as arrays:
            return {
                "index": index,
                "identity": arrays["identity"],
                "probes": arrays["probes"],
                "probe_identity": arrays["probe_identity"],
                "generate_s": info["generate_s"],
                "build_s": info["build_s"],
                "shape": info["shape"],
                "reused": True,
            }
    if keep:
        workdir.mkdir(parents=True, exist_ok=True)
        marker.touch()
    index = VectorIndex(128, settings, workdir)
    identity = np.empty(n, np.int64)
    probes, probe_identity = [], []
    rate = min(1.0, 3 * queries / (n / 2.5))  # people = n / 2.5 on average
    shape = None
    start = time.perf_counter()
    for chunk in gallery_chunks(n, probe_rate=rate):
        lo = int(chunk.ids[0]) - 1
        identity[lo : lo + len(chunk.ids)] = chunk.identity
        if shape is None:
            shape = distance_percentiles(chunk.vectors, chunk.identity)
        index.add(chunk.ids, chunk.vectors, chunk.categories, chunk.dob_days, defer_indexing=True)
        probes.append(chunk.probe_vectors)
        probe_identity.append(chunk.probe_identity)
        log(f"  generated {lo + len(chunk.ids):,}/{n:,} templates")
    generate_s = time.perf_counter() - start
    log(f"  building the index over {n:,} templates ...")
    start = time.perf_counter()
    index.rebuild(progress=Throttled())
    build_s = time.perf_counter() - start
    log(f"  built {index.kind} ({index.factory}) in {build_s:.0f} s")
    rng = np.random.default_rng(7)
    all_probes = np.concatenate(probes)
    pick = rng.choice(len(all_probes), size=min(queries, len(all_probes)), replace=False)
    g = {
        "index": index,
        "identity": identity,
        "probes": all_probes[pick],
        "probe_identity": np.concatenate(probe_identity)[pick],
        "generate_s": generate_s,
        "build_s": build_s,
        "shape": shape,
        "reused": False,
    }
    if keep:
        start = time.perf_counter()
        index.meta["bench"] = {
            "built_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "generate_s": generate_s,
            "build_s": build_s,
            "shape": shape,
        }
        index.save()
        np.savez(saved, identity=identity, probes=g["probes"], probe_identity=g["probe_identity"])
        marker.unlink()
        log(f"  saved the index in {workdir} in {time.perf_counter() - start:.0f} s")
    return g


def recall(
    exact: list[list[tuple[int, float]]],
    results: list[set[int]],
    identity: npt.NDArray[np.int64],
    probe_identity: npt.NDArray[np.int64],
) -> dict[str, Any]:
    """Mate, threshold and top-50 recall of approximate results against exact ones."""
    mate_pairs = mate_hits = near_pairs = near_hits = all_pairs = all_hits = 0
    for i, exact_top in enumerate(exact):
        for rid, distance in exact_top:
            hit = rid in results[i]
            all_pairs += 1
            all_hits += hit
            if identity[rid - 1] == probe_identity[i]:
                mate_pairs += 1
                mate_hits += hit
            if distance <= DECISION_DISTANCE:
                near_pairs += 1
                near_hits += hit
    return {
        "mate_pairs": mate_pairs,
        "mate_recall": round(mate_hits / mate_pairs, 5) if mate_pairs else None,
        "threshold_pairs": near_pairs,
        "threshold_recall": round(near_hits / near_pairs, 5) if near_pairs else None,
        "recall_at_50": round(all_hits / all_pairs, 5) if all_pairs else None,
    }


def approximate(g: dict[str, Any]) -> dict[str, Any]:
    """Latency of the gallery's index without and with the exposure rule (the rule
    is what an officer's search carries); the results, for :func:`add_recall`."""
    index: VectorIndex = g["index"]
    identity, probes = g["identity"], g["probes"]
    status = proc_status()
    load = os.getloadavg()[0]
    faiss.omp_set_num_threads(1)
    out: dict[str, Any] = {}
    found_sets: dict[str, list[set[int]]] = {}
    for prefix, rule in (("", {}), ("filtered_", RULE)):
        for q in probes[:20]:  # warm caches and the page cache of the float rows
            index.search(q, K, **rule)
        approx_ms, results = [], []
        for i, q in enumerate(probes):
            found, ms = timed(index.search, q, K, **rule)
            approx_ms.append(ms)
            results.append({rid for rid, _ in found})
            if (i + 1) % 1000 == 0:
                log(f"  approximate {prefix or 'unfiltered '}search {i + 1}/{len(probes)}")
        out[f"{prefix}approx_p50_ms"] = round(pct(approx_ms, 50), 3)
        out[f"{prefix}approx_p95_ms"] = round(pct(approx_ms, 95), 3)
        found_sets[prefix] = results
    log(
        f"  p50/p95 {out['approx_p50_ms']}/{out['approx_p95_ms']} ms, filtered "
        f"{out['filtered_approx_p50_ms']}/{out['filtered_approx_p95_ms']} ms"
    )
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    memory = index.memory_bytes()
    n = len(identity)
    return {
        "n": n,
        "kind": index.kind,
        "factory": index.factory,
        "build_s": round(g["build_s"], 1),
        "index_bytes": memory,
        "bytes_per_template": round(memory / n, 1),
        "rss_bytes": status["VmRSS"],
        "rss_anon_bytes": status["RssAnon"],
        "rss_file_bytes": status["RssFile"],
        "peak_rss_bytes": status["VmHWM"],
        "load_average_1min_before_search": round(load, 2),
        **out,
        "settings": index.settings.model_dump(),
        "_found": found_sets,
    }


def add_recall(
    run: dict[str, Any],
    g: dict[str, Any],
    exact: list[list[tuple[int, float]]],
    exact_filtered: list[list[tuple[int, float]]],
) -> None:
    """Mate, threshold and top-50 recall of a run's results against the exact ones."""
    found = run.pop("_found")
    for prefix, truth in (("", exact), ("filtered_", exact_filtered)):
        scores = recall(truth, found[prefix], g["identity"], g["probe_identity"])
        for key, value in scores.items():
            run[f"{prefix}{key}"] = value


def ground_truth(index: VectorIndex, probes: npt.NDArray[np.float32]) -> dict[str, Any]:
    """Batched exact top 50 of every probe, without and with the exposure rule."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    exact, exact_filtered = [], []
    for lo in range(0, len(probes), 256):  # 256 x 65536 distances at a time
        both = index.search_exact_many(probes[lo : lo + 256], K, [{}, RULE])
        exact += both[0]
        exact_filtered += both[1]
    seconds = time.perf_counter() - start
    log(f"  exact top {K} of {len(probes)} probes, with and without the rule, {seconds:.0f} s")
    return {"exact": exact, "exact_filtered": exact_filtered, "ground_truth_s": seconds}


def measure(
    n: int,
    args: argparse.Namespace,
    workdir: Path,
    compare: list[str],
    sweep: list[tuple[int, int]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The default index at size n, the ``sweep`` of search settings on it, and the
    ``compare`` factories on the same data. Cheapest first, so that a long run at 30M
    logs its figures as they come: the serving process, latencies, then the exact
    ground truth and the recalls."""
    log(f"gallery of {n:,} templates")
    settings = Settings().index
    g = build_gallery(n, args.queries, workdir / "main", settings, keep=True)
    g["probes"] = g["probes"][: args.queries]  # a kept gallery may hold more
    g["probe_identity"] = g["probe_identity"][: args.queries]
    index: VectorIndex = g["index"]
    served = serve(workdir / "main", settings)
    log("  serving process: " + json.dumps(served))
    run = approximate(g)
    comparisons = []
    for nprobe, rerank in sweep:
        log(f"  search settings on the same index: nprobe {nprobe}, rerank x{rerank}")
        index.settings = settings.model_copy(
            update={"ivf_nprobe": nprobe, "ivf_large_nprobe": nprobe, "rerank_factor": rerank}
        )
        result = approximate(g)
        result["variant"] = f"nprobe {nprobe}, re-rank {rerank * K}"
        comparisons.append(result)
    index.settings = settings
    large = n >= 5_000_000
    exact_queries = min(args.queries, args.exact_queries_large if large else args.queries)
    truth = ground_truth(index, g["probes"][:exact_queries])
    for r in [run, *comparisons]:
        add_recall(r, g, truth["exact"], truth["exact_filtered"])
        log(f"  recall {r.get('variant', 'default')}: " + json.dumps(recall_summary(r)))
    faiss.omp_set_num_threads(1)
    exact_ms = []
    for q in g["probes"][: 5 if large else 200]:
        exact_ms.append(timed(index.search_exact, q, K, repeats=1 if large else REPEATS)[1])
    run.update(
        queries=len(g["probes"]),
        exact_queries=exact_queries,
        exact_timed_queries=len(exact_ms),
        ground_truth_s=round(truth["ground_truth_s"], 1),
        generate_s=round(g["generate_s"], 1),
        reused_build=g["reused"],
        float_vectors_bytes=n * 128 * 4,
        exact_p50_ms=round(pct(exact_ms, 50), 3),
        exact_p95_ms=round(pct(exact_ms, 95), 3),
        speedup=round(pct(exact_ms, 50) / run["approx_p50_ms"], 1),
        synthetic_shape=g["shape"],
        **served,
    )
    for r in comparisons:
        r["speedup"] = round(run["exact_p50_ms"] / r["approx_p50_ms"], 1)
    del g, index
    for factory in compare:
        log(f"  comparison on the same gallery: {factory}")
        other = build_gallery(
            n, args.queries, workdir / "compare", settings.model_copy(update={"factory": factory})
        )
        result = approximate(other)
        add_recall(result, other, truth["exact"], truth["exact_filtered"])
        result["speedup"] = round(run["exact_p50_ms"] / result["approx_p50_ms"], 1)
        result["variant"] = "comparison"
        comparisons.append(result)
        del other
        shutil.rmtree(workdir / "compare", ignore_errors=True)
    return run, comparisons


def recall_summary(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("mate_recall", "threshold_recall", "filtered_mate_recall", "filtered_threshold_recall")
    return {key: r.get(key) for key in keys}


def serve(directory: Path, settings: IndexSettings) -> dict[str, Any]:
    """Load the saved index in a fresh process (cold) and measure it serving."""
    log(f"  serving process on {directory} ...")
    env = {**os.environ, "PRUM_INDEX__FACTORY": settings.factory}
    proc = subprocess.run(
        [sys.executable, __file__, "--serve", str(directory)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"the serving process failed:\n{proc.stderr}")
    sys.stderr.write(proc.stderr)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def evict(directory: Path) -> None:
    """Drop the index's files from the page cache: the next load reads the disk."""
    for path in directory.iterdir():
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def serve_main(directory: Path) -> None:
    """Child process: cold load, first search, 1,000 searches, RSS, then 1,000 inserts
    and 1,000 deletes, each checked by the next search. Prints JSON on stdout."""
    settings = Settings().index
    with np.load(directory / "bench.npz") as arrays:
        probes = arrays["probes"]
    os.sync()
    evict(directory)
    start = time.perf_counter()
    index = VectorIndex.open(directory, 128, settings)
    load_s = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    n = len(index)
    start = time.perf_counter()
    index.search(probes[0], K, **RULE)
    first_ms = (time.perf_counter() - start) * 1000
    log(f"  loaded {n:,} templates in {load_s:.1f} s; first search {first_ms:.0f} ms")
    serve_ms, serve_single_ms = [], []
    for i in range(1, 1001):
        start = time.perf_counter()
        index.search(probes[i % len(probes)], K, **RULE)
        serve_single_ms.append((time.perf_counter() - start) * 1000)
        again = timed(index.search, probes[i % len(probes)], K, **RULE, repeats=REPEATS - 1)[1]
        serve_ms.append(min(serve_single_ms[-1], again))
    status = proc_status()
    # What each insert or delete would cost the next search if the cached filter
    # bitmap were recomputed instead of patched: one pass over every row's attributes.
    key = (frozenset(FILTER_CATEGORIES), ADULT_BORN_BEFORE, False)
    start = time.perf_counter()
    np.packbits(index._mask(0, n, key), bitorder="little")
    filter_rebuild_ms = (time.perf_counter() - start) * 1000
    # Inserts: held-out photos under new record ids, each searched for right after.
    rng = np.random.default_rng(11)
    insert_ms, after_insert_ms, inserted_found = [], [], 0
    new_ids = np.arange(n + 1, n + 1001, dtype=np.int64)
    adult = np.array([ADULT_BORN_BEFORE - 400], np.int32)
    for rid in new_ids:
        v = probes[rng.integers(len(probes))] + rng.normal(0, 0.01, 128).astype(np.float32)
        start = time.perf_counter()
        index.add([rid], v[None], [0], adult)
        insert_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        found = index.search(v, K, **RULE)
        after_insert_ms.append((time.perf_counter() - start) * 1000)
        inserted_found += any(r == rid for r, _ in found)
    # Deletes: the nearest record of a probe, then the same search must not return it.
    delete_ms, after_delete_ms, deleted_gone = [], [], 0
    for i in range(1000):
        q = probes[(i + 7) % len(probes)] + rng.normal(0, 0.01, 128).astype(np.float32)
        nearest = index.search(q, 1, **RULE)[0][0]
        start = time.perf_counter()
        index.remove([nearest])
        delete_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        found = index.search(q, K, **RULE)
        after_delete_ms.append((time.perf_counter() - start) * 1000)
        deleted_gone += all(r != nearest for r, _ in found)
    after = proc_status()
    result = {
        "load_s": round(load_s, 2),
        "first_search_ms": round(first_ms, 1),
        "serve_searches": len(serve_ms),
        "serve_p50_ms": round(pct(serve_ms, 50), 3),
        "serve_p95_ms": round(pct(serve_ms, 95), 3),
        "serve_first_run_p50_ms": round(pct(serve_single_ms, 50), 3),
        "serve_first_run_p95_ms": round(pct(serve_single_ms, 95), 3),
        "rss_gib": round(status["VmRSS"] / 2**30, 2),
        "serve_rss_anon_gib": round(status["RssAnon"] / 2**30, 2),
        "serve_rss_file_gib": round(status["RssFile"] / 2**30, 2),
        "filter_rebuild_ms": round(filter_rebuild_ms, 1),
        "inserts": len(insert_ms),
        "insert_p50_ms": round(pct(insert_ms, 50), 3),
        "insert_p95_ms": round(pct(insert_ms, 95), 3),
        "search_after_insert_p95_ms": round(pct(after_insert_ms, 95), 3),
        "inserted_found_by_next_search": inserted_found,
        "deletes": len(delete_ms),
        "delete_p50_ms": round(pct(delete_ms, 50), 3),
        "delete_p95_ms": round(pct(delete_ms, 95), 3),
        "search_after_delete_p95_ms": round(pct(after_delete_ms, 95), 3),
        "deleted_gone_from_next_search": deleted_gone,
        "rss_after_mutations_gib": round(after["VmRSS"] / 2**30, 2),
    }
    print(json.dumps(result))


def check(run: dict[str, Any], targets: dict[str, tuple[str, float]]) -> list[str]:
    lines = []
    for key, (op, target) in targets.items():
        if key not in run:
            continue
        value = run[key]
        ok = value is not None and (value <= target if op == "<=" else value >= target)
        lines.append(f"{key} {value} (target {op} {target}): {'met' if ok else 'MISSED'}")
    return lines


def targets_for(run: dict[str, Any]) -> dict[str, tuple[str, float]]:
    return HUNGARY_TARGETS if run["n"] >= HUNGARY else TARGETS


def projection(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """RAM and latency of a 30M gallery, scaled from the largest compressed run
    (only when no run measured 30M)."""
    compressed = [r for r in runs if r["kind"].startswith("ivf")]
    if not compressed or max(r["n"] for r in runs) >= HUNGARY:
        return None
    r = max(compressed, key=lambda run: run["n"])
    per_template = r["bytes_per_template"]
    index_bytes = per_template * HUNGARY
    vectors = HUNGARY * 128 * 4
    ram = MACHINE_RAM_GIB * 2**30
    return {
        "n": HUNGARY,
        "from_n": r["n"],
        "index_ram_gib": round(index_bytes / 2**30, 2),
        "float_vectors_gib": round(vectors / 2**30, 2),
        "page_cache_left_gib": round((ram - index_bytes - 2 * 2**30) / 2**30, 2),
        "vectors_fit_page_cache": bool(ram - index_bytes - 2 * 2**30 >= vectors),
        "approx_p95_ms_estimate": round(r["approx_p95_ms"] * HUNGARY / r["n"], 1),
    }


def report(results: dict[str, Any]) -> str:
    runs = results["runs"]
    scale = [
        "| templates | index | build | load (cold) | first search | filtered p50/p95 "
        "(serving process) | RSS after 1,000 probes | index RAM | inserts / deletes "
        "seen by the next search | measured (load average) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        scale.append(
            f"| {r['n']:,} | `{r['factory']}` | {r['build_s'] / 60:.1f} min "
            f"| {r['load_s']:.1f} s | {r['first_search_ms']:.0f} ms "
            f"| {r['serve_p50_ms']:.2f} / {r['serve_p95_ms']:.2f} ms | {r['rss_gib']:.2f} GiB "
            f"| {r['index_bytes'] / 2**30:.2f} GiB "
            f"| {r['inserted_found_by_next_search']:,} of {r['inserts']:,} / "
            f"{r['deleted_gone_from_next_search']:,} of {r['deletes']:,} "
            f"| {r.get('measured_on', '')} ({r['load_average_1min_before_search']}) |"
        )
    rows = [
        "| templates | index, search settings | exact p50/p95 | approx p50/p95 | "
        "filtered p50/p95 | mate recall (filtered) | threshold recall (filtered) | "
        "top-50 recall (filtered) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs + results.get("comparisons", []):
        s = r["settings"]
        nprobe = s["ivf_large_nprobe"] if r["n"] > s["large_above"] else s["ivf_nprobe"]
        rows.append(
            f"| {r['n']:,} | `{r['factory']}`, nprobe {nprobe}, re-rank "
            f"{s['rerank_factor'] * K}"
            + (f" ({r['variant']})" if r.get("variant") == "comparison" else "")
            + (
                f" | {r['exact_p50_ms']:.0f} / {r['exact_p95_ms']:.0f} ms "
                if "exact_p50_ms" in r
                else " | (same) "
            )
            + f"| {r['approx_p50_ms']:.2f} / {r['approx_p95_ms']:.2f} ms "
            f"| {r['filtered_approx_p50_ms']:.2f} / {r['filtered_approx_p95_ms']:.2f} ms "
            f"| {r['mate_recall']} ({r['filtered_mate_recall']}) "
            f"| {r['threshold_recall']} ({r['filtered_threshold_recall']}) "
            f"| {r['recall_at_50']} ({r['filtered_recall_at_50']}) |"
        )
    lines = [
        "## Gallery vector search (`bench/gallery_search.py`)",
        "",
        "Synthetic dlib-shaped 128-D templates (`bench/synthetic.py`), top "
        f"{K}, one search thread (`faiss.omp_set_num_threads(1)`). The shape is the one "
        "the node searches whatever the template model: with the fused dlib+SFace "
        "template (issue 31) the index shortlists on the 128-D dlib part and the "
        "shortlist is re-scored from the row store, so a 128-D dlib-shaped gallery is "
        "the right test. Probes are held-out photos of enrolled people. Exposure rule: "
        "two categories, adults only (about 68 % of the gallery). Exact = a batched "
        "brute-force scan of the same rows in the same run "
        f"({runs[0]['exact_queries'] if runs else 0}+ probes at each size, with and "
        "without the rule). Mate recall: share of (probe, mate) pairs of the exact "
        "top 50 that the approximate top 50 also holds; threshold recall: the same for "
        f"every entry within {DECISION_DISTANCE}. In-run latency is the best of "
        f"{REPEATS} runs per probe (the two cores are shared with other work: load "
        f"average {results['load_average_at_end'][2]:.1f} over the last 15 minutes). "
        "The serving process is a fresh process that loads the saved index after its "
        "files were dropped from the page cache (cold), searches 1,000 probes with the "
        f"rule (best of {REPEATS} runs; the first runs alone are in the JSON), "
        "then takes 1,000 inserts and 1,000 deletes, each followed by a search that "
        "must see it (timed once: it pays for patching the cached filter).",
        "",
        *scale,
        "",
        *rows,
        "",
    ]
    for r in runs:
        lines.append(f"- {r['n']:,}: " + "; ".join(check(r, targets_for(r))) + ".")
    big = max(runs, key=lambda r: r["n"]) if runs else None
    if big:
        lines += [
            "",
            f"What the serving process holds at {big['n']:,} templates: the FAISS "
            f"structure and the attributes ({big['index_bytes'] / 2**30:.2f} GiB: "
            "4-bit codes, one per dimension, 64 bytes, and a 64-bit row label per "
            "template, and the list centres; record id, category, date "
            "of birth and live flag, 14 bytes per template) stay in RAM; the float rows "
            f"({big['float_vectors_bytes'] / 2**30:.1f} GiB) stay on disk in the "
            "vector file, and a search reads only the rows of its short list (200) with "
            "pread to re-rank it and to return exact distances: they come from the "
            "kernel's page cache (shared, and dropped under memory pressure), not from "
            "the process's own memory; with the cache cold each is a disk read. After "
            f"1,000 probes (each searched {REPEATS} times) the process was "
            f"{big['rss_gib']:.2f} GiB resident ({big['serve_rss_anon_gib']:.2f} GiB "
            f"anonymous, {big['serve_rss_file_gib']:.2f} GiB of mapped file pages). "
            "Re-ranking from 8-bit codes in RAM instead (SQ8, 128 bytes per template, "
            "3.6 GiB at 30M) would only help when the float rows are not in the page "
            "cache, i.e. the first searches after a cold start (first search: "
            f"{big['first_search_ms']:.0f} ms); it was not measured. "
            "A filter's bitmap over all rows takes "
            f"{big['filter_rebuild_ms']:.0f} ms to compute at this size; it is cached and "
            "patched by each insert and delete.",
        ]
    p = results.get("projection")
    if p:
        lines += [
            "",
            f"Projection for {p['n']:,} templates from the {p['from_n']:,} run: "
            f"index {p['index_ram_gib']} GiB, approximate p95 about "
            f"{p['approx_p95_ms_estimate']} ms.",
        ]
    shape = runs[0]["synthetic_shape"] if runs else None
    if shape:
        lines += ["", "| distances | p5 | median | p95 |", "|---|---:|---:|---:|"]
        for kind in ("genuine", "impostor"):
            for source, values in (("real dlib", REAL_DLIB[kind]), ("synthetic", shape[kind])):
                lines.append(
                    f"| {kind}, {source} | {values['p5']:.2f} | {values['median']:.2f} "
                    f"| {values['p95']:.2f} |"
                )
    return "\n".join(lines)


def print_shape(shape: dict[str, dict[str, float]]) -> None:
    print("distance percentiles   real dlib (61 photos)        synthetic")
    for kind in ("genuine", "impostor"):
        real, syn = REAL_DLIB[kind], shape[kind]
        cols = ("min", "p5", "median", "p95", "max")
        print(
            f"  {kind:9s} "
            + " ".join(f"{real[c]:.2f}" for c in cols)
            + "   "
            + " ".join(f"{syn[c]:.2f}" for c in cols)
        )


def print_run(run: dict[str, Any], title: str) -> None:
    print(f"\n== {run['n']:,} templates, {title}: {run['kind']} ({run['factory']})")
    print("  " + json.dumps({k: v for k, v in run.items() if k != "synthetic_shape"}))
    for line in check(run, targets_for(run)):
        print(f"  {line}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument(
        "--exact-queries-large",
        type=int,
        default=200,
        help="probes with an exact ground truth at sizes of 5M and above (batched scan)",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=None,
        help="another FAISS factory to measure on the same gallery (default none)",
    )
    parser.add_argument(
        "--compare-max", type=int, default=1_000_000, help="largest size given --compare runs"
    )
    parser.add_argument(
        "--sweep",
        default="",
        help="search settings also measured on the largest gallery: nprobe:rerank,...",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep each built gallery in KEEP/n-<size> and reuse it on the next run",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the runs of other sizes already in bench/results/gallery_search.json "
        "(a 30M gallery takes hours: its sizes may be measured in separate runs)",
    )
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.serve:
        serve_main(args.serve)
        return
    compare = [c for c in args.compare or [] if c]
    sweep = [(int(a), int(b)) for a, _, b in (p.partition(":") for p in args.sweep.split(",") if p)]
    sizes = [int(size) for size in args.sizes.split(",")]
    runs: list[dict[str, Any]] = []
    comparisons: list[dict[str, Any]] = []
    earlier = ROOT / "bench" / "results" / "gallery_search.json"
    if args.merge and earlier.exists():
        kept = json.loads(earlier.read_text())
        runs = [r for r in kept["runs"] if r["n"] not in sizes]
        comparisons = [r for r in kept.get("comparisons", []) if r["n"] not in sizes]
        for r in runs + comparisons:
            r.setdefault("measured_on", kept.get("date"))
        sizes_kept = ", ".join(f"{r['n']:,}" for r in runs)
        log(f"  kept the runs of {sizes_kept or 'no other size'} from {earlier}")
    for n in sizes:
        if args.keep:
            workdir = args.keep / f"n-{n}"
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(tempfile.mkdtemp(prefix="gallery-bench-"))
        try:
            run, others = measure(
                n,
                args,
                workdir,
                compare if n <= args.compare_max else [],
                sweep if n == max(sizes) else [],
            )
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        run["measured_on"] = time.strftime("%Y-%m-%d")
        for other in others:
            other["measured_on"] = run["measured_on"]
        runs.append(run)
        runs.sort(key=lambda r: int(r["n"]))
        comparisons += others
        print_run(run, "default settings")
        print_shape(run["synthetic_shape"])
        for other in others:
            print_run(other, other.get("variant", "comparison"))
        # Written after each size: a 30M run takes over an hour, and what was measured
        # stays measured if a later size fails.
        results = {
            "load_average_at_end": list(os.getloadavg()),
            "timing": f"best of {REPEATS} runs per probe, one search thread",
            "runs": runs,
            "comparisons": comparisons,
            "projection": projection(runs),
        }
        if not args.no_write:
            path = write_json("gallery_search", results)
            write_section("gallery_search", report(results))
            log(f"wrote {path} and the gallery_search section of docs/benchmarks.md")


if __name__ == "__main__":
    main()

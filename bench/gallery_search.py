"""Benchmark of the face gallery's vector index: exact vs approximate search.

For each gallery size: build time, RAM, single-thread top-50 latency of the exact
scan and of the approximate index on the same probes, mate recall, threshold recall,
bytes per template; then a projection for a 30M gallery (Hungary) on one machine.

    .venv/bin/python bench/gallery_search.py [--sizes 1000000,10000000] [--queries N]

Probes are held-out photos of enrolled people (bench/synthetic.py). Metrics:

- mate recall: of the (probe, mate) pairs where exact search puts a photo of the
  probe's person in its top 50, the share the approximate top 50 also contains;
- threshold recall: of the gallery entries the exact search finds within the decision
  distance 0.6, the share the approximate top 50 also contains;
- speed-up: exact p50 latency / approximate p50 latency.

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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from prum.categories.face.config import IndexSettings
from prum.categories.face.index import VectorIndex, nlist_for
from prum.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json, write_section
from synthetic import REAL_DLIB, distance_percentiles, gallery_chunks

K = 50
REPEATS = 2  # timed runs per probe; the faster counts (see timed())
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
# Exposure rule used for the filtered measurement: two categories, adults only.
FILTER_CATEGORIES = (0, 1)
ADULT_BORN_BEFORE = 20_400 - int(18 * 365.25)


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


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Result and milliseconds of the faster of two calls.

    The machine's two cores are shared with other work; the best of two runs of the
    same probe discounts the other processes while keeping the spread between probes
    (which is what p95 is about). The same rule applies to exact and approximate.
    """
    best = math.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return result, best * 1000


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def build_gallery(n: int, queries: int, workdir: Path, settings: IndexSettings) -> dict[str, Any]:
    """Stream a synthetic gallery into a VectorIndex and build its ANN structure."""
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
    return {
        "index": index,
        "identity": identity,
        "probes": all_probes[pick],
        "probe_identity": np.concatenate(probe_identity)[pick],
        "generate_s": generate_s,
        "build_s": build_s,
        "shape": shape,
    }


def approximate(g: dict[str, Any], exact: list[list[tuple[int, float]]]) -> dict[str, Any]:
    """Latency and recall of the gallery's index against the exact results."""
    index: VectorIndex = g["index"]
    identity, probes, probe_identity = g["identity"], g["probes"], g["probe_identity"]
    status = proc_status()
    load = os.getloadavg()[0]
    faiss.omp_set_num_threads(1)
    for q in probes[:20]:  # warm caches and the page cache of the float rows
        index.search(q, K)
    approx_ms, results = [], []
    for i, q in enumerate(probes):
        found, ms = timed(index.search, q, K)
        approx_ms.append(ms)
        results.append({rid for rid, _ in found})
        if (i + 1) % 500 == 0:
            log(f"  approximate search {i + 1}/{len(probes)}")
    mate_pairs = mate_hits = near_pairs = near_hits = 0
    for i, exact_top in enumerate(exact):
        for rid, distance in exact_top:
            if identity[rid - 1] == probe_identity[i]:
                mate_pairs += 1
                mate_hits += rid in results[i]
            if distance <= DECISION_DISTANCE:
                near_pairs += 1
                near_hits += rid in results[i]
    filtered = measure_filtered(index, probes[: min(100, len(exact))])
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
        "approx_p50_ms": round(pct(approx_ms, 50), 3),
        "approx_p95_ms": round(pct(approx_ms, 95), 3),
        "mate_pairs": mate_pairs,
        "mate_recall": round(mate_hits / mate_pairs, 5) if mate_pairs else None,
        "threshold_pairs": near_pairs,
        "threshold_recall": round(near_hits / near_pairs, 5) if near_pairs else None,
        **filtered,
        "settings": index.settings.model_dump(),
    }


def measure(
    n: int, queries: int, exact_queries: int, workdir: Path, compare: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The default index at size n, and the ``compare`` factories on the same data."""
    log(f"gallery of {n:,} templates")
    settings = Settings().index
    g = build_gallery(n, queries, workdir / "main", settings)
    faiss.omp_set_num_threads(1)
    exact, exact_ms = [], []
    for i, q in enumerate(g["probes"][:exact_queries]):
        found, ms = timed(g["index"].search_exact, q, K)
        exact.append(found)
        exact_ms.append(ms)
        if (i + 1) % 100 == 0:
            log(f"  exact search {i + 1}/{exact_queries}")
    run = approximate(g, exact)
    run.update(
        queries=len(g["probes"]),
        exact_queries=len(exact_ms),
        generate_s=round(g["generate_s"], 1),
        float_vectors_bytes=n * 128 * 4,
        exact_p50_ms=round(pct(exact_ms, 50), 3),
        exact_p95_ms=round(pct(exact_ms, 95), 3),
        speedup=round(pct(exact_ms, 50) / run["approx_p50_ms"], 1),
        synthetic_shape=g["shape"],
    )
    del g
    comparisons = []
    for factory in compare:
        log(f"  comparison on the same gallery: {factory}")
        other = build_gallery(
            n, queries, workdir / "compare", settings.model_copy(update={"factory": factory})
        )
        result = approximate(other, exact)
        result["speedup"] = round(run["exact_p50_ms"] / result["approx_p50_ms"], 1)
        comparisons.append(result)
        del other
        shutil.rmtree(workdir / "compare", ignore_errors=True)
    return run, comparisons


def measure_filtered(index: VectorIndex, probes: np.ndarray) -> dict[str, Any]:
    """Exposure-rule search (two categories, adults) against the filtered exact scan."""
    rule = {"allowed_categories": FILTER_CATEGORIES, "born_before_days": ADULT_BORN_BEFORE}
    ms_list, hits, total = [], 0, 0
    for q in probes:
        found, ms = timed(index.search, q, K, **rule)
        ms_list.append(ms)
        exact = index.search_exact(q, K, **rule)
        got = {rid for rid, _ in found}
        hits += sum(rid in got for rid, _ in exact)
        total += len(exact)
    return {
        "filtered_approx_p95_ms": round(pct(ms_list, 95), 3),
        "filtered_recall_at_50": round(hits / total, 5) if total else None,
    }


def check(run: dict[str, Any]) -> list[str]:
    lines = []
    for key, (op, target) in TARGETS.items():
        value = run[key]
        ok = value is not None and (value <= target if op == "<=" else value >= target)
        lines.append(f"{key} {value} (target {op} {target}): {'met' if ok else 'MISSED'}")
    return lines


def projection(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """RAM and latency of a 30M gallery, scaled from the largest compressed run."""
    compressed = [r for r in runs if r["kind"].startswith("ivf")]
    if not compressed:
        return None
    r = max(compressed, key=lambda run: run["n"])
    per_template = r["bytes_per_template"]
    index_bytes = per_template * HUNGARY
    vectors = HUNGARY * 128 * 4
    ram = MACHINE_RAM_GIB * 2**30
    # Scanned codes per query = nprobe * n / nlist; scale the measured latency by it.
    scan_ratio = (HUNGARY / nlist_for(HUNGARY)) / (r["n"] / nlist_for(r["n"]))
    return {
        "n": HUNGARY,
        "from_n": r["n"],
        "index_ram_gib": round(index_bytes / 2**30, 2),
        "float_vectors_gib": round(vectors / 2**30, 2),
        "page_cache_left_gib": round((ram - index_bytes - 2 * 2**30) / 2**30, 2),
        "vectors_fit_page_cache": bool(ram - index_bytes - 2 * 2**30 >= vectors),
        "approx_p95_ms_estimate": round(r["approx_p95_ms"] * scan_ratio, 1),
        "build_s_estimate": round(r["build_s"] * HUNGARY / r["n"] * 1.2),
        "nlist": nlist_for(HUNGARY),
    }


def report(results: dict[str, Any]) -> str:
    rows = [
        "| templates | index | build | RAM (index) | bytes/template | exact p50/p95 | "
        "approx p50/p95 | speed-up | mate recall | threshold recall | filtered recall |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"] + results.get("comparisons", []):
        rows.append(
            f"| {r['n']:,} | {r['kind']} `{r['factory']}` | {r['build_s']:.0f} s "
            f"| {r['index_bytes'] / 2**30:.2f} GiB | {r['bytes_per_template']:.0f} "
            + (
                f"| {r['exact_p50_ms']:.1f} / {r['exact_p95_ms']:.1f} ms "
                if "exact_p50_ms" in r
                else "| (same as above) "
            )
            + f"| {r['approx_p50_ms']:.2f} / {r['approx_p95_ms']:.2f} ms | {r['speedup']:.0f}x "
            f"| {r['mate_recall']} ({r['mate_pairs']} pairs) "
            f"| {r['threshold_recall']} ({r['threshold_pairs']} pairs) "
            f"| {r['filtered_recall_at_50']} |"
        )
    lines = [
        "## Gallery vector search (`bench/gallery_search.py`)",
        "",
        "Synthetic dlib-shaped 128-D templates (`bench/synthetic.py`), "
        f"top {K}, one search thread (`faiss.omp_set_num_threads(1)`). Latency of each "
        f"probe is the best of {REPEATS} runs: the two cores are shared with other work "
        f"(load average {results['load_average_at_end'][2]:.1f} over the last 15 minutes "
        "of the run). Exact = brute-force scan of the same rows in the same run. Probes "
        "are held-out photos of enrolled people. Mate recall: share of (probe, mate) "
        "pairs of the exact top 50 that the approximate top 50 also holds; threshold "
        f"recall: the same for every entry within {DECISION_DISTANCE}; filtered recall: "
        "top-50 overlap under an exposure rule (two categories, adults only). RAM "
        "(index) excludes the float rows, which live in a memory-mapped file.",
        "",
        *rows,
        "",
    ]
    for r in results["runs"]:
        lines.append(f"- {r['n']:,} ({r['kind']}): " + "; ".join(check(r)) + ".")
    for r in results.get("comparisons", []):
        lines.append(f"- {r['n']:,} (comparison, {r['kind']}): " + "; ".join(check(r)) + ".")
    p = results.get("projection")
    if p:
        lines += [
            "",
            f"Projection for {p['n']:,} templates (Hungary) on one {MACHINE_RAM_GIB} GiB "
            f"machine, scaled from the {p['from_n']:,} run: compressed index "
            f"{p['index_ram_gib']} GiB of RAM (IVF{p['nlist']} lists, codes, ids and "
            f"attributes); float vectors {p['float_vectors_gib']} GiB in the memory-mapped "
            f"file on disk, with about {p['page_cache_left_gib']} GiB left for the page "
            f"cache ({'all' if p['vectors_fit_page_cache'] else 'not all'} of them fit); "
            f"approximate p95 about {p['approx_p95_ms_estimate']} ms; build about "
            f"{p['build_s_estimate'] / 60:.0f} min.",
        ]
    shape = results["runs"][0]["synthetic_shape"] if results["runs"] else None
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
    print(
        f"  norm      {REAL_DLIB['norm']['min']:.2f}-{REAL_DLIB['norm']['max']:.2f} "
        f"(median {REAL_DLIB['norm']['median']:.2f})       "
        f"{shape['norm']['min']:.2f}-{shape['norm']['max']:.2f} "
        f"(median {shape['norm']['median']:.2f})"
    )


def print_run(run: dict[str, Any], title: str) -> None:
    print(f"\n== {run['n']:,} templates, {title}: {run['kind']} ({run['factory']})")
    for key in (
        "build_s",
        "index_bytes",
        "bytes_per_template",
        "rss_bytes",
        "rss_anon_bytes",
        "peak_rss_bytes",
        "exact_p50_ms",
        "exact_p95_ms",
        "approx_p50_ms",
        "approx_p95_ms",
        "filtered_approx_p95_ms",
        "filtered_recall_at_50",
    ):
        if key in run:
            print(f"  {key}: {run[key]}")
    for line in check(run):
        print(f"  {line}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument(
        "--exact-queries-large",
        type=int,
        default=100,
        help="exact searches at sizes of 5M and above (each scans the whole gallery)",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=None,
        help='another FAISS factory to measure on the same gallery (default "HNSW32,Flat")',
    )
    parser.add_argument(
        "--compare-max", type=int, default=1_000_000, help="largest size given --compare runs"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="index files (temp dir)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    compare = ["HNSW32,Flat"] if args.compare is None else [c for c in args.compare if c]
    runs, comparisons = [], []
    for n in [int(size) for size in args.sizes.split(",")]:
        workdir = Path(tempfile.mkdtemp(prefix="gallery-bench-", dir=args.workdir))
        try:
            exact_queries = args.queries if n < 5_000_000 else args.exact_queries_large
            run, others = measure(
                n,
                args.queries,
                min(exact_queries, args.queries),
                workdir,
                compare if n <= args.compare_max else [],
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        runs.append(run)
        comparisons += others
        print_run(run, "default settings")
        print_shape(run["synthetic_shape"])
        for other in others:
            print_run(other, "comparison")
    results = {
        "load_average_at_end": list(os.getloadavg()),
        "timing": f"best of {REPEATS} runs per probe, one search thread",
        "runs": runs,
        "comparisons": comparisons,
        "projection": projection(runs),
    }
    if results["projection"]:
        print("\nprojection:", json.dumps(results["projection"], indent=1))
    if not args.no_write:
        path = write_json("gallery_search", results)
        write_section("gallery_search", report(results))
        log(f"wrote {path} and the gallery_search section of docs/benchmarks.md")


if __name__ == "__main__":
    main()

"""``prum face``: enrol photos, search, quality, delete, rebuild the index, evaluate,
calibrate false-match rates."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from prum.categories.interface import SubjectCategory
from prum.cliargs import (
    CPUS,
    AsJson,
    DatabaseUrl,
    DataDir,
    Workers,
    add_delete_command,
    console,
    fail,
    node_settings,
    progress,
)
from prum.config import Settings
from prum.errors import PrumError
from prum.federation.messages import Category

app = typer.Typer(help="The national face gallery.", no_args_is_help=True)
add_delete_command(app, Category.FACE)


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    return node_settings(data_dir, database_url)


def _box(text: str | None) -> Any:
    from prum.categories.face.bulk import parse_box

    return None if text is None else parse_box(text)


@app.command("enroll")
def face_enroll(
    source: Annotated[Path, typer.Argument(help="A folder of photos or a CSV manifest.")],
    category: Annotated[
        SubjectCategory, typer.Option(help="Data-subject category (manifest may override).")
    ] = SubjectCategory.SUSPECT,
    provenance: Annotated[str, typer.Option(help="Where the photos come from.")] = "national",
    workers: Workers = CPUS,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Enrol photos (resumable: a second run skips what is already stored)."""
    from prum.categories.face.bulk import enrol_photos, folder_items, manifest_items
    from prum.categories.face.gallery import FaceGallery

    if not source.exists():
        raise fail(PrumError(f"{source} does not exist"))
    settings = _settings(data_dir, database_url)
    try:
        gallery = FaceGallery(settings)
        reader = manifest_items if source.is_file() else folder_items
        items = list(reader(source, category=category, provenance=provenance))
        with progress() as bar:
            task = bar.add_task("enrolling", total=len(items))
            started = time.perf_counter()
            report = enrol_photos(
                gallery, items, workers=workers, on_progress=lambda n: bar.advance(task, n)
            )
        elapsed = time.perf_counter() - started
        gallery.close()
    except PrumError as exc:
        raise fail(exc) from exc
    rate = report.enrolled / elapsed if elapsed > 0 else 0.0
    console.print(
        f"enrolled {report.enrolled}, already present {report.already_present},"
        f" refused {report.refused_total} in {elapsed:.1f} s ({rate:.1f} photos/s)"
    )
    for key, code, message in report.refusals:
        console.print(f"  refused {key}: ({code}) {message}")


@app.command("search")
def face_search(
    probe: Annotated[Path, typer.Argument(help="Probe photo.")],
    box: Annotated[str | None, typer.Option(help="Chosen face: left,top,right,bottom.")] = None,
    max_candidates: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Search the gallery with a probe photo; prints the candidate list."""
    from prum.categories.face.gallery import FaceGallery

    settings = _settings(data_dir, database_url)
    try:
        gallery = FaceGallery(settings)
        result = gallery.search(_read(probe), box=_box(box), max_candidates=max_candidates)
    except PrumError as exc:
        raise fail(exc) from exc
    if as_json:
        console.print_json(json.dumps(_result_dict(result)))
        return
    _print_candidates(result)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise fail(PrumError(f"cannot read {path}: {exc.strerror}")) from exc


def _result_dict(result: Any) -> dict[str, Any]:
    return {
        "model_id": result.model_id,
        "gallery_size": result.gallery_size,
        "index_kind": result.index_kind,
        "probe_box": result.probe_box.as_list() if result.probe_box else None,
        "probe_quality": result.probe_quality.overall if result.probe_quality else None,
        "timings_ms": result.timings_ms,
        "candidates": [
            {
                "rank": c.rank,
                "reference": c.reference,
                "distance": round(c.distance, 4),
                "score": round(c.score, 4),
                "false_match_rate": c.false_match_rate,
                "false_match": c.false_match_words,
                "subject_category": c.subject_category.value,
                "provenance": c.provenance,
                "synthetic": c.synthetic,
            }
            for c in result.candidates
        ],
    }


def _print_candidates(result: Any) -> None:
    quality = f"{result.probe_quality.overall:.0f}" if result.probe_quality else "-"
    console.print(
        f"gallery {result.gallery_size} templates ({result.index_kind}), probe quality {quality};"
        f" candidates for human verification (not identifications):"
    )
    table = Table()
    for col in ("rank", "reference", "score", "false-match rate", "category", "source"):
        table.add_column(col)
    for c in result.candidates:
        source = c.provenance + (" [synthetic]" if c.synthetic else "")
        table.add_row(
            str(c.rank),
            c.reference,
            f"{c.score:.3f}",
            c.false_match_words.split(" (")[0],
            c.subject_category.value,
            source,
        )
    console.print(table)


@app.command("quality")
def face_quality(
    image: Annotated[Path, typer.Argument(help="A photo.")],
    as_json: AsJson = False,
) -> None:
    """Detect every face and print its quality components (0-100)."""
    from prum.categories.face.pipeline import FacePipeline

    try:
        analysis = FacePipeline(Settings().face).analyse(_read(image))
    except PrumError as exc:
        raise fail(exc) from exc
    faces: list[dict[str, Any]] = [
        {
            "box": f.box.as_list(),
            "overall": round(f.quality.overall, 1),
            "components": {k: round(v, 1) for k, v in f.quality.components.items()},
            "measures": {k: round(v, 3) for k, v in f.quality.measures.items()},
        }
        for f in analysis.faces
    ]
    if as_json:
        console.print_json(json.dumps({"width": analysis.image.width, "faces": faces}))
        return
    console.print(
        f"{image}: {analysis.image.width} x {analysis.image.height}, {len(faces)} face(s)"
    )
    for n, face in enumerate(faces, start=1):
        table = Table(title=f"face {n} at {face['box']}: overall {face['overall']}")
        table.add_column("component")
        table.add_column("score", justify="right")
        for name, score in face["components"].items():
            table.add_row(name, f"{score:.0f}")
        console.print(table)


@app.command("info")
def face_info(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Describe the gallery: model, size, index kind."""
    from prum.categories.face.gallery import FaceGallery

    try:
        gallery = FaceGallery(_settings(data_dir, database_url))
        console.print_json(json.dumps(gallery.describe()))
    except PrumError as exc:
        raise fail(exc) from exc


@app.command("rebuild-index")
def face_rebuild_index(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Rebuild the vector index from the system of record."""
    from prum.categories.face.gallery import FaceGallery

    try:
        gallery = FaceGallery(_settings(data_dir, database_url))
        started = time.perf_counter()
        gallery.rebuild_index()
    except PrumError as exc:
        raise fail(exc) from exc
    console.print(
        f"rebuilt {gallery.index.kind} index of {len(gallery.index)} templates"
        f" in {time.perf_counter() - started:.1f} s"
    )


def _labelled_items(folder: Path, labels: Path | None) -> list[Any]:
    from prum.categories.face.bulk import manifest_items

    manifest = labels or folder / "identities.csv"
    if not manifest.is_file():
        raise PrumError(f"no labels: expected {manifest} with columns file,identity[,group]")
    items = list(manifest_items(manifest, category=SubjectCategory.SUSPECT, provenance="eval"))
    if labels is not None:  # paths in an explicit label file are relative to the folder
        from dataclasses import replace

        items = [replace(i, path=_resolve(folder, i.source_key)) for i in items]
    return items


def _resolve(folder: Path, name: str) -> Path:
    path = folder / name
    return path if path.exists() else folder / "images" / name


@app.command("evaluate")
def face_evaluate(
    folder: Annotated[Path, typer.Argument(help="Labelled folder (identities.csv inside).")],
    labels: Annotated[
        Path | None, typer.Option(help="CSV file,identity[,group]; default FOLDER/identities.csv")
    ] = None,
    thresholds: Annotated[str, typer.Option(help="Comma-separated distances.")] = "0.5,0.55,0.6",
    det: Annotated[Path | None, typer.Option(help="Write the DET curve PNG here.")] = None,
    output: Annotated[Path | None, typer.Option("--json", help="Write the report JSON.")] = None,
    workers: Workers = CPUS,
) -> None:
    """Accuracy on a labelled set: distributions, EER, FMR/FNMR, rank-1/10, per group."""
    import numpy as np

    from prum.categories.face.bulk import extract_all
    from prum.categories.face.evaluation import evaluate, plot_det, summary_lines

    try:
        items = _labelled_items(folder, labels)
        vectors, identities, groups, failed = [], [], [], []
        settings = Settings().face
        with progress() as bar:
            task = bar.add_task("embedding", total=len(items))
            for result in extract_all(items, settings, use="probe", workers=workers, check=False):
                bar.advance(task)
                if result.vector is None:
                    failed.append((result.item.source_key, result.error))
                    continue
                vectors.append(result.vector)
                identities.append(result.item.identity or result.item.source_key)
                groups.append(result.item.group)
        has_groups = any(g is not None for g in groups)
        report = evaluate(
            np.stack(vectors),
            identities,
            [g or "unknown" for g in groups] if has_groups else None,
            thresholds=[float(t) for t in thresholds.split(",")],
        )
    except PrumError as exc:
        raise fail(exc) from exc
    for key, why in failed:
        console.print(f"[yellow]not embedded[/] {key}: {why}")
    for line in summary_lines(report):
        console.print(line)
    if det is not None:
        plot_det(report, det)
        console.print(f"DET curve: {det}")
    if output is not None:
        data = report.to_dict() | {
            "samples": len(vectors),
            "not_embedded": len(failed),
            "date": dt.date.today().isoformat(),
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(data, indent=2) + "\n")
        console.print(f"report: {output}")


@app.command("calibrate")
def face_calibrate(
    labelled: Annotated[
        Path | None, typer.Option(help="Labelled folder to calibrate from, instead of the gallery.")
    ] = None,
    workers: Workers = CPUS,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Rebuild the impostor distribution behind the false-match rates."""
    import numpy as np

    from prum.categories.face.bulk import extract_all
    from prum.categories.face.calibration import ImpostorDistribution
    from prum.categories.face.gallery import FaceGallery

    try:
        gallery = FaceGallery(_settings(data_dir, database_url))
        supplied = None
        if labelled is not None:
            items = _labelled_items(labelled, None)
            results = [
                r
                for r in extract_all(items, gallery.settings.face, use="probe", workers=workers)
                if r.vector is not None
            ]
            supplied = ImpostorDistribution.from_templates(
                np.stack([r.vector for r in results if r.vector is not None]),
                [r.item.identity or r.item.source_key for r in results],
                model_id=gallery.pipeline.model_id,
                source=f"labelled set {labelled}",
            )
        dist = gallery.calibrate(supplied)
    except PrumError as exc:
        raise fail(exc) from exc
    console.print(f"calibrated from {dist.source}: {dist.comparisons} impostor comparisons")
    for d in (0.4, 0.5, 0.6):
        console.print(f"  distance {d}: {dist.describe(d)}")

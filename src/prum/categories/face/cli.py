"""``prum face``: enrol photos, search, quality, delete, rebuild the index, evaluate,
calibrate false-match rates."""

from __future__ import annotations

import datetime as dt
import json
import time
from enum import StrEnum
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
from prum.errors import InvalidLabelledSet, PrumError
from prum.federation.messages import Category

app = typer.Typer(help="The national face gallery.", no_args_is_help=True)


class Profile(StrEnum):
    """Validation profiles of Type-10 transactions (face/type10.py)."""

    INT_I = "int-i"
    ANSI_NIST = "ansi-nist"


add_delete_command(app, Category.FACE)


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    return node_settings(data_dir, database_url)


def _box(text: str | None) -> Any:
    from prum.categories.face.bulk import parse_box

    return None if text is None else parse_box(text)


@app.command("enroll")
def face_enroll(
    source: Annotated[
        Path,
        typer.Argument(
            help="A photo, an ANSI/NIST-ITL transaction (.an2, .eft, .nist, .int), a CSV"
            " manifest, or a folder of photos and transactions."
        ),
    ],
    category: Annotated[
        SubjectCategory, typer.Option(help="Data-subject category (manifest may override).")
    ] = SubjectCategory.SUSPECT,
    provenance: Annotated[str, typer.Option(help="Where the photos come from.")] = "national",
    profile: Annotated[
        Profile | None,
        typer.Option(help="Type-10 validation profile (default: the node's, int-i)."),
    ] = None,
    workers: Workers = CPUS,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Enrol photos and Type-10 transactions (resumable: a second run skips what is stored).

    A transaction gives one record per frontal image (POS, then SAP); its profile and
    angled images are named in the provenance and not searched; its TCN is the provenance.
    """
    from prum.categories.face.bulk import enrol_photos
    from prum.categories.face.gallery import FaceGallery
    from prum.categories.face.sources import SourceReport, source_items

    if not source.exists():
        raise fail(PrumError(f"{source} does not exist"))
    settings = _settings(data_dir, database_url)
    found = SourceReport()
    try:
        items = list(
            source_items(
                source,
                category=category,
                provenance=provenance,
                settings=settings.face,
                profile=profile.value if profile else None,
                report=found,
            )
        )
        gallery = FaceGallery(settings)
        with progress() as bar:
            task = bar.add_task("enrolling", total=len(items))
            started = time.perf_counter()
            report = enrol_photos(
                gallery,
                items,
                workers=min(workers, max(1, len(items))),
                on_progress=lambda n: bar.advance(task, n),
            )
        elapsed = time.perf_counter() - started
        gallery.close()
    except PrumError as exc:
        raise fail(exc) from exc
    rate = report.enrolled / elapsed if elapsed > 0 else 0.0
    summary = {
        "enrolled": report.enrolled,
        "already_present": report.already_present,
        "refused": report.refused_total,
        "transactions": found.transactions,
        "images_not_searched": found.not_searched,
        "records_skipped": found.skipped_records,
        "seconds": round(elapsed, 2),
        "refusals": [{"source": k, "code": c, "message": m} for k, c, m in report.refusals],
    }
    if as_json:
        console.print_json(json.dumps(summary))
        return
    console.print(
        f"enrolled {report.enrolled}, already present {report.already_present},"
        f" refused {report.refused_total} in {elapsed:.1f} s ({rate:.1f} photos/s)"
    )
    if found.transactions:
        console.print(
            f"{found.transactions} transaction(s): {found.not_searched} profile or angled"
            f" image(s) named in the provenance, not searched; {found.skipped_records}"
            " record(s) that are not faces skipped"
        )
    if report.refusals:
        refused = Table(title="refused")
        for col in ("source", "code", "reason"):
            refused.add_column(col)
        for key, code, message in report.refusals:
            refused.add_row(key, code, message)
        console.print(refused)


@app.command("search")
def face_search(
    probe: Annotated[
        Path, typer.Argument(help="Probe photo, or an ANSI/NIST-ITL transaction (Type-10).")
    ],
    box: Annotated[str | None, typer.Option(help="Chosen face: left,top,right,bottom.")] = None,
    max_candidates: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    profile: Annotated[
        Profile | None,
        typer.Option(help="Type-10 validation profile (default: the node's, int-i)."),
    ] = None,
    type10: Annotated[
        Path | None,
        typer.Option(
            "--type10",
            file_okay=False,
            help="Write each candidate as a Type-10 transaction (.an2) into this folder.",
        ),
    ] = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Search the gallery with a probe photo or transaction; prints the candidate list."""
    from prum.categories.face.gallery import FaceGallery

    settings = _settings(data_dir, database_url)
    try:
        image, probe_control = _probe_image(probe, settings, profile)
        gallery = FaceGallery(settings)
        result = gallery.search(image, box=_box(box), max_candidates=max_candidates)
        written = _write_type10(gallery, result, type10, probe_control) if type10 else []
    except PrumError as exc:
        raise fail(exc) from exc
    if as_json:
        console.print_json(
            json.dumps(_result_dict(result) | {"type10_files": [str(w) for w in written]})
        )
        return
    _print_candidates(result)
    for path in written:
        console.print(f"candidate written as Type-10: {path}")


def _probe_image(
    path: Path, settings: Settings, profile: Profile | None
) -> tuple[bytes, str | None]:
    """The probe's image bytes, and the TCN when the probe is a transaction."""
    from prum.categories.face.sources import source_kind
    from prum.categories.face.type10 import read_face_transaction

    data = _read(path)
    if source_kind(path) != "transaction":
        return data, None
    tx = read_face_transaction(
        data,
        profile.value if profile else settings.face.type10_profile,
        use="probe",
        max_pixels=settings.face.max_pixels,
    )
    best = tx.best
    console.print(
        f"probe: transaction {tx.control_number}, record 10.{best.idc:03d}"
        f" (POS {best.pose or 'F'}, SAP {best.sap}, {best.compression})",
        highlight=False,
    )
    return best.data, tx.control_number


def _write_type10(gallery: Any, result: Any, folder: Path, probe_control: str | None) -> list[Path]:
    from prum.categories.face.type10_write import candidate_transaction

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrumError(f"cannot create {folder}: {exc.strerror}") from exc
    written: list[Path] = []
    for c in result.candidates:
        stored = gallery.store.image(c.reference)
        if stored is None:
            continue  # a record enrolled without its image (synthetic load tests)
        record = gallery.store.get(c.reference)
        data = candidate_transaction(
            stored[0],
            reference=c.reference,
            quality=record.quality,
            quality_overall=record.quality_overall,
            originating_agency=gallery.settings.country or "PRUM",
            probe_control=probe_control,
        )
        path = folder / f"{c.rank:02d}-{c.reference}.an2"
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise PrumError(f"cannot write {path}: {exc.strerror}") from exc
        written.append(path)
    return written


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
def face_info(
    as_json: AsJson = False, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Describe the gallery: model, size, index kind."""
    from prum.categories.face.gallery import FaceGallery

    try:
        gallery = FaceGallery(_settings(data_dir, database_url))
        described = gallery.describe()
    except PrumError as exc:
        raise fail(exc) from exc
    if as_json:
        console.print_json(json.dumps(described))
        return
    table = Table(title="face gallery")
    table.add_column("")
    table.add_column("value")
    for key, value in described.items():
        table.add_row(key.replace("_", " "), "-" if value is None else str(value))
    console.print(table)


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


@app.command("reenrol")
def face_reenrol(
    embedder: Annotated[
        str, typer.Option(help='Model set to upgrade to: "dlib+sface" or "dlib".')
    ] = "dlib+sface",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    workers: Workers = CPUS,
) -> None:
    """Embed every record again with another model set, from the stored photos.

    Resumable: a rerun continues where an interrupted one stopped. The gallery answers
    with its old model until every record is done, then switches (face/reenrol.py).
    """
    from prum.categories.face.gallery import FaceGallery
    from prum.categories.face.reenrol import reenrol

    try:
        gallery = FaceGallery(_settings(data_dir, database_url))
        with progress() as bar:
            task = bar.add_task("re-enrolling", total=None)
            report = reenrol(
                gallery,
                embedder,
                workers=workers,
                on_total=lambda n: bar.update(task, total=n),
                on_progress=lambda n: bar.advance(task, n),
            )
        gallery.close()
    except PrumError as exc:
        raise fail(exc) from exc
    for rid, code, why in report.failed:
        console.print(f"[yellow]not re-enrolled[/] record id {rid}: {code} {why}")
    console.print(
        f"{report.upgraded} records re-enrolled, {report.already} already on {report.model_id}"
    )
    if not report.switched:
        raise fail(
            PrumError(
                f"{len(report.failed)} records could not be re-enrolled; the gallery keeps its"
                " old model until they are deleted or enrolled again, then run this again"
            )
        )
    console.print(f"the gallery now uses {report.model_id}")


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
    thresholds: Annotated[
        str,
        typer.Option(
            help="Comma-separated distances; default: where the model set's shipped reference"
            " puts the false-match rate at 1e-3, 1e-4 and 1e-5."
        ),
    ] = "",
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
        model_id: str | None = None
        settings = Settings().face
        with progress() as bar:
            task = bar.add_task("embedding", total=len(items))
            for result in extract_all(items, settings, use="probe", workers=workers, check=False):
                bar.advance(task)
                if result.vector is None:
                    failed.append((result.item.source_key, result.error))
                    continue
                vectors.append(result.vector)
                model_id = result.model_id
                identities.append(result.item.identity or result.item.source_key)
                groups.append(result.item.group)
        has_groups = any(g is not None for g in groups)
        from prum.categories.face.fused import MODEL_SET, model_set_of
        from prum.categories.face.fusion import fused_block_distances
        from prum.categories.face.reference import reference_for
        from prum.categories.face.supervision import summary_lines as supervision_lines
        from prum.categories.face.supervision import supervise

        model_set = model_set_of(model_id)
        supervision = supervise(
            np.stack(vectors),
            identities,
            [g or "unknown" for g in groups] if has_groups else None,
            attempted=len(items),
            model_set=model_set,
            reference=None if model_set is None else reference_for(model_set),
        )
        reference = None if model_set is None else reference_for(model_set)
        if thresholds.strip():
            try:
                chosen = [float(t) for t in thresholds.split(",")]
            except ValueError:
                raise InvalidLabelledSet(
                    f"--thresholds takes distances separated by commas, not {thresholds!r}"
                ) from None
        elif reference is not None:
            chosen = [round(reference.distance_at(rate), 4) for rate in (1e-3, 1e-4, 1e-5)]
            console.print(
                "distances below: where the shipped reference of "
                f"{model_set} puts the false-match rate at 1e-3, 1e-4 and 1e-5"
            )
        else:
            chosen = [0.5, 0.55, 0.6]  # dlib's neighbourhood; an uncalibrated model
        report = evaluate(
            np.stack(vectors),
            identities,
            [g or "unknown" for g in groups] if has_groups else None,
            thresholds=chosen,
            distances=fused_block_distances if settings.embedder == MODEL_SET else None,
        )
    except PrumError as exc:
        raise fail(exc) from exc
    for key, why in failed:
        console.print(f"[yellow]not embedded[/] {key}: {why}")
    for line in summary_lines(report):
        console.print(line)
    for line in supervision_lines(supervision):
        console.print(line)
    if det is not None:
        plot_det(report, det)
        console.print(f"DET curve: {det}")
    if output is not None:
        data = report.to_dict() | {
            "samples": len(vectors),
            "not_embedded": len(failed),
            "date": dt.date.today().isoformat(),
            "supervision": supervision,
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
    from prum.categories.face.fusion import fused_pair_distances
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
                pair_distance=fused_pair_distances if gallery.pipeline.fused else None,
            )
        dist = gallery.calibrate(supplied)
    except PrumError as exc:
        raise fail(exc) from exc
    console.print(f"calibrated from {dist.source}: {dist.comparisons} impostor comparisons")
    for d in (0.4, 0.5, 0.6):
        console.print(f"  distance {d}: {dist.describe(d)}")

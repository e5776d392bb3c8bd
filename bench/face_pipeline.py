"""Face pipeline speed: milliseconds per stage on a 1-megapixel photo, and enrolment
throughput with 1 and 2 worker processes on the real sample photos.

    .venv/bin/python bench/face_pipeline.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prum.categories.face.bulk import PhotoItem, extract_all
from prum.categories.face.config import FaceSettings
from prum.categories.face.decode import decode_image
from prum.categories.face.pipeline import FacePipeline
from prum.categories.face.quality import assess_quality
from prum.demo.samples import sample_faces
from report import write_json, write_section

T = TypeVar("T")


def one_megapixel_jpeg(path: Path) -> bytes:
    image = Image.open(path).convert("RGB")
    scale = (1_000_000 / (image.width * image.height)) ** 0.5
    image = image.resize((round(image.width * scale), round(image.height * scale)))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def stage_times(data: bytes, repeats: int) -> dict[str, float]:
    settings = FaceSettings()
    pipeline = FacePipeline(settings)
    pipeline.extract(data, use="probe")  # load every model once
    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable[..., T], *args: Any) -> T:
        t = time.perf_counter()
        out = fn(*args)
        times.setdefault(name, []).append(1000 * (time.perf_counter() - t))
        return out

    for _ in range(repeats):
        image = timed("decode", partial(decode_image, max_pixels=settings.max_pixels), data)
        boxes = timed("detect (HOG)", pipeline.detector.detect, image.pixels)
        box = boxes[0]
        landmarks = timed("landmarks (MediaPipe)", pipeline.landmarker.locate, image.pixels, box)
        timed("quality", assess_quality, image.pixels, box, landmarks, len(boxes))
        shape = timed("align (5-point)", pipeline.aligner.shape, image.pixels, box)
        timed("embed (dlib ResNet)", pipeline.embedder.embed, image.pixels, shape)
        timed("whole extract", partial(pipeline.extract, use="probe"), data)
    return {name: statistics.median(values) for name, values in times.items()}


def throughput(paths: list[Path], workers: int) -> dict[str, float]:
    items = [PhotoItem(path=p, source_key=p.name) for p in paths]
    started = time.perf_counter()
    first = None
    done = 0
    for _ in extract_all(items, FaceSettings(), use="enrol", workers=workers, check=False):
        done += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    steady = (done - 1) / (end - first) if first is not None and end > first else 0.0
    return {
        "workers": workers,
        "images": done,
        "wall_s": round(end - started, 2),
        "images_per_s_wall": round(done / (end - started), 2),
        "images_per_s_steady": round(steady, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    samples = sample_faces()
    paths = [p for p, _ in samples.images]
    print(f"sample set: {samples.source} ({len(paths)} photos)", file=sys.stderr)
    data = one_megapixel_jpeg(paths[0])
    w, h = Image.open(io.BytesIO(data)).size
    stages = stage_times(data, args.repeats)
    for name, ms in stages.items():
        print(f"{name:24s} {ms:8.1f} ms")
    runs = [throughput(paths, 1), throughput(paths, 2)]
    for run in runs:
        print(
            f"enrolment, {run['workers']} process(es): {run['images_per_s_wall']} images/s"
            f" wall ({run['images_per_s_steady']} steady) over {run['images']} photos"
        )
    write_json(
        "face_pipeline",
        {
            "photo": f"{w}x{h}",
            "stage_ms_median": stages,
            "enrolment": runs,
            "sample_set": samples.source,
        },
    )
    rows = "\n".join(f"| {name} | {ms:.1f} |" for name, ms in stages.items())
    enrol = "\n".join(
        "| {workers} | {images} | {images_per_s_wall} | {images_per_s_steady} |".format(**r)
        for r in runs
    )
    write_section(
        "face_pipeline",
        f"""## Face pipeline (`bench/face_pipeline.py`)

Stages on one {w} x {h} JPEG (1 megapixel), median of {args.repeats} runs, one process:

| stage | ms |
|---|---|
{rows}

Enrolment throughput on the real sample photos ({samples.source}); photos of varied
size (up to several megapixels); "wall" includes starting the worker processes and
loading the models, "steady" is from the first result on:

| processes | photos | images/s (wall) | images/s (steady) |
|---|---|---|---|
{enrol}
""",
    )


if __name__ == "__main__":
    main()

"""Embeds every photo of the LFW development set once with dlib and SFace, cached.

    nice -n 10 .venv/bin/python bench/face_lfw.py [--limit N]

bench/face_accuracy.py reads the cache (var/bench/face_lfw.npz, gitignored). Embedding
9,525 photos with both models takes ~25 min of one core, so the run saves every 500
photos and resumes where it stopped.

Per photo it records, with the time of each stage:
- dlib alone: HOG boxes, the principal face by face/principal.py, dlib's embedding;
- SFace: YuNet faces, the principal face, the embedding of the chip and of its mirror;
- dlib on the face YuNet chose: the HOG box that overlaps it (IoU >= 0.3), else a square
  on YuNet's landmarks ("yunet box"), and, for every 10th photo, dlib on that square, to
  measure whether one detector (YuNet) can serve both models (89 ms more a photo).

``--part i/n`` embeds every n-th photo from the i-th into its own cache file, so that
two processes can share the work; bench/face_accuracy.py merges the parts.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import dlib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prum.categories.face.decode import decode_image
from prum.categories.face.detect import FaceDetector
from prum.categories.face.embed import Aligner, DlibEmbedder
from prum.categories.face.principal import principal_index
from prum.categories.face.sface import SFaceEmbedder, YunetDetector, align_chip, yunet_square
from prum.categories.face.types import FaceBox, Pixels
from prum.demo.samples import shared_data_dir
from report import ROOT

CACHE = ROOT / "var" / "bench" / "face_lfw.npz"
STAGES = ("decode", "hog", "dlib", "yunet", "sface", "sface_mirror", "dlib_yunet_box")


# Another labelled folder (identities.csv with file,identity; photos in images/): held-out
# people for bench/face_accuracy.py --held-out. Set by --data.
DATA: list[Path] = []


def lfw_dir() -> Path:
    if DATA:
        return DATA[0]
    shared = shared_data_dir()
    if shared is None or not (shared / "faces-lfw-dev").is_dir():
        raise SystemExit("../shared/data/faces-lfw-dev is absent: this benchmark needs it")
    return shared / "faces-lfw-dev"


def lfw_photos() -> list[tuple[str, str]]:
    with open(lfw_dir() / "identities.csv", newline="") as f:
        return [(row["file"], row["identity"]) for row in csv.DictReader(f)]


class Models:
    def __init__(self) -> None:
        # The pipeline's defaults (face/config.py): upsampling only when nothing is found.
        self.hog = FaceDetector("hog", upsample_below=1200, max_side=1600)
        self.aligner = Aligner()
        self.dlib = DlibEmbedder()
        self.yunet = YunetDetector()
        self.sface = SFaceEmbedder(mirror=False)

    def dlib_embed(self, pixels: Pixels, box: FaceBox) -> np.ndarray[Any, Any]:
        return self.dlib.embed(pixels, self.aligner.shape(pixels, box)).vector


def embed_one(models: Models, data: bytes, *, with_square: bool) -> dict[str, Any]:
    t: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        t[name] = 1000 * (now - clock)
        clock = now

    nan = np.full(128, np.nan, dtype=np.float32)
    image = decode_image(data, max_pixels=40_000_000)
    px = image.pixels
    h, w = px.shape[:2]
    lap("decode")
    hog = models.hog.detect(px)
    lap("hog")
    dlib_vec = nan
    dlib_box: FaceBox | None = None
    if hog:
        dlib_box = hog[principal_index(hog, w, h)]
        dlib_vec = models.dlib_embed(px, dlib_box)
    lap("dlib")
    faces = models.yunet.detect(px)
    lap("yunet")
    sface_vec, mirror_vec, fused_dlib, square_dlib = nan, nan, nan, nan
    fused_from = 0  # 0: no YuNet face, 1: the agreeing HOG box, 2: YuNet's square
    if faces:
        face = faces[principal_index([f.box for f in faces], w, h, [f.score for f in faces])]
        chip = align_chip(px, face.points)
        sface_vec = models.sface.embed_chip(chip)
        lap("sface")
        mirror_vec = models.sface.embed_chip(np.ascontiguousarray(chip[:, ::-1]))
        lap("sface_mirror")
        agreeing = max(hog, key=face.box.iou) if hog else None
        if with_square or agreeing is None or face.box.iou(agreeing) < 0.3:
            square_dlib = models.dlib_embed(px, yunet_square(face.points, w, h))
            lap("dlib_yunet_box")
        if agreeing is not None and face.box.iou(agreeing) >= 0.3:
            fused_from = 1
            fused_dlib = dlib_vec if agreeing == dlib_box else models.dlib_embed(px, agreeing)
        else:
            fused_from = 2
            fused_dlib = square_dlib
    return {
        "n_hog": len(hog),
        "n_yunet": len(faces),
        "fused_from": fused_from,
        "dlib": dlib_vec,
        "sface": sface_vec,
        "sface_mirror": mirror_vec,
        "fused_dlib": fused_dlib,
        "square_dlib": square_dlib,
        "ms": [t.get(s, 0.0) for s in STAGES],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--part", default="0/1")
    parser.add_argument("--data", type=Path, help="another labelled folder (held-out people)")
    parser.add_argument("--squares", action="store_true", help="second pass (fill_squares)")
    args = parser.parse_args()
    part, parts = (int(x) for x in args.part.split("/"))
    if args.data is not None:
        DATA.append(args.data)
    if args.squares:
        name = f"{args.cache.stem}.part{part}of{parts}.npz" if parts > 1 else args.cache.name
        fill_squares(args.cache.with_name(name))
        return
    dlib.DLIB_USE_CUDA = False
    photos = lfw_photos()
    if args.limit:
        photos = photos[: args.limit]
    photos = photos[part::parts]
    if parts > 1:
        args.cache = args.cache.with_name(f"{args.cache.stem}.part{part}of{parts}.npz")
    done: dict[str, list[Any]] = {}
    if args.cache.exists():
        old = np.load(args.cache, allow_pickle=False)
        done = {k: list(old[k]) for k in old.files}
    start = len(done.get("photo", []))
    models = Models()
    images = lfw_dir() / "images"
    began = time.time()
    for i, (name, identity) in enumerate(photos[start:], start):
        row = embed_one(models, (images / name).read_bytes(), with_square=i % 10 == 0)
        row["photo"], row["identity"] = name, identity
        for key, value in row.items():
            done.setdefault(key, []).append(value)
        if (i + 1) % 500 == 0 or i + 1 == len(photos):
            save(args.cache, done)
            rate = (i + 1 - start) / (time.time() - began)
            print(f"{i + 1}/{len(photos)} photos, {rate:.1f}/s", flush=True)


def fill_squares(cache: Path) -> None:
    """Second pass: dlib on YuNet's square for every photo (the fused pipeline's dlib
    half, face/fused.py), where the first pass computed it only for every 10th."""
    old = np.load(cache, allow_pickle=False)
    data = {k: old[k].copy() for k in old.files}
    models = Models()
    images = lfw_dir() / "images"
    todo = np.flatnonzero(np.isnan(data["square_dlib"][:, 0]) & (data["n_yunet"] > 0))
    began = time.time()
    for n, i in enumerate(todo):
        px = decode_image((images / str(data["photo"][i])).read_bytes(), max_pixels=40_000_000)
        pixels = px.pixels
        h, w = pixels.shape[:2]
        faces = models.yunet.detect(pixels)
        face = faces[principal_index([f.box for f in faces], w, h, [f.score for f in faces])]
        t = time.perf_counter()
        data["square_dlib"][i] = models.dlib_embed(pixels, yunet_square(face.points, w, h))
        data["ms"][i, STAGES.index("dlib_yunet_box")] = 1000 * (time.perf_counter() - t)
        if (n + 1) % 500 == 0 or n + 1 == len(todo):
            save(cache, {k: list(v) for k, v in data.items()})
            print(f"squares {n + 1}/{len(todo)}, {(n + 1) / (time.time() - began):.1f}/s")


def save(path: Path, done: dict[str, list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(str(tmp), **{k: np.asarray(v) for k, v in done.items()})
    tmp.replace(path)


if __name__ == "__main__":
    main()

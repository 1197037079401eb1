"""ControlNet preprocessors: a photo (or a ready-made map) in, an RGB control map at the generation size out.

Edges and lines need no weights; depth needs a local depth model (studio.engine.depth); pose runs
mediapipe's bundled model (studio.engine.pose). Heavy packages are imported on first use only.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from studio.engine.control_params import PARAMS, Param  # noqa: F401  (re-exported)
from studio.engine.request import PREPROCESSORS, ControlSpec

RESIZE_MODES = ("stretch", "crop")
MAX_SIDE = 8192


def preprocess(
    image: Image.Image,
    preprocessor: str,
    size: tuple[int, int],
    params: dict[str, float] | None = None,
    *,
    resize_mode: str = "stretch",
    depth_model: str | Path | None = None,
    allow_download: bool = False,
) -> Image.Image:
    """Return the RGB control map of `image` at `size` = (width, height).

    resize_mode "stretch" maps the whole image onto the size, as diffusers does with init images
    and masks, so a map made from the init image lines up with it; "crop" keeps the aspect ratio
    and cuts the centre. depth_model / allow_download: see studio.engine.depth.resolve_depth_model.
    """
    # 1. Check inputs
    values = check_params(preprocessor, params)
    width, height = _check_size(size)
    if not isinstance(image, Image.Image):
        raise ValueError(f"The control image must be a PIL image, not {type(image).__name__}.")
    if image.width < 1 or image.height < 1:
        raise ValueError("The control image is empty (0 pixels).")
    if resize_mode not in RESIZE_MODES:
        raise ValueError(
            f"Unknown resize mode {resize_mode!r}; choose one of {', '.join(RESIZE_MODES)}."
        )

    # 2. Frame the picture like the generated image (still at the source resolution)
    framed = _crop_to_aspect(image, width / height) if resize_mode == "crop" else image

    # 3. Run the preprocessor
    if preprocessor == "none":
        # a ready-made map: transparent parts are background, which is black in control maps
        return _to_rgb(framed, background=(0, 0, 0)).resize(
            (width, height), Image.Resampling.BICUBIC
        )
    rgb = _to_rgb(framed, background=(255, 255, 255))
    if preprocessor == "canny":
        return _canny(rgb.resize((width, height), Image.Resampling.LANCZOS), values)
    if preprocessor == "lineart":
        return _lineart(rgb, (width, height), values)
    if preprocessor == "depth":
        from studio.engine.depth import depth_map

        return depth_map(
            rgb,
            (width, height),
            model=depth_model,
            allow_download=allow_download,
            resolution=int(values["resolution"]),
        )
    from studio.engine.pose import pose_map

    return pose_map(rgb, (width, height), min_visibility=values["min_visibility"])


def preprocess_control(
    spec: ControlSpec,
    size: tuple[int, int],
    *,
    resize_mode: str = "stretch",
    depth_model: str | Path | None = None,
    allow_download: bool = False,
) -> Image.Image:
    """The control map of one ControlNet unit at size = (width, height)."""
    if spec.image is None:
        raise ValueError(f"The ControlNet unit {spec.model!r} has no control image.")
    return preprocess(
        spec.image,
        spec.preprocessor,
        size,
        dict(spec.params),
        resize_mode=resize_mode,
        depth_model=depth_model,
        allow_download=allow_download,
    )


def release() -> None:
    """Free the depth and pose models held between calls (they load again when next needed)."""
    from studio.engine import depth, pose

    depth.release()
    pose.release()


def check_params(preprocessor: str, params: dict[str, float] | None) -> dict[str, float]:
    """Defaults merged with `params`; unknown names and out-of-range values raise ValueError."""
    if preprocessor not in PREPROCESSORS:
        raise ValueError(
            f"Unknown preprocessor {preprocessor!r}; choose one of {', '.join(PREPROCESSORS)}."
        )
    specs = {p.name: p for p in PARAMS[preprocessor]}
    values = {name: float(p.default) for name, p in specs.items()}
    for name, value in (params or {}).items():
        if name not in specs:
            known = ", ".join(specs) or "none"
            raise ValueError(
                f"The {preprocessor} preprocessor has no setting {name!r} (settings: {known})."
            )
        spec = specs[name]
        if not isinstance(value, (int, float)) or not spec.minimum <= value <= spec.maximum:
            raise ValueError(
                f"{preprocessor} {name} must be a number from {spec.minimum:g} to {spec.maximum:g}, "
                f"not {value!r}."
            )
        values[name] = float(value)
    if preprocessor == "depth" and 0 < values["resolution"] < 28:
        raise ValueError("Depth resolution must be 0 (automatic) or at least 28 pixels.")
    if preprocessor == "canny" and values["low_threshold"] > values["high_threshold"]:
        raise ValueError("Canny low threshold must not be above the high threshold.")
    return values


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"The control size must be (width, height), not {size!r}.") from None
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ValueError(f"The control size must be 1 to {MAX_SIDE} pixels a side, not {size!r}.")
    return width, height


def _crop_to_aspect(image: Image.Image, aspect: float) -> Image.Image:
    w, h = image.size
    if w / h > aspect:  # too wide: cut the sides
        new_w = max(1, round(h * aspect))
        left = (w - new_w) // 2
        return image.crop((left, 0, left + new_w, h))
    new_h = max(1, round(w / aspect))
    top = (h - new_h) // 2
    return image.crop((0, top, w, top + new_h))


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / float maps (e.g. depth PNGs): scale the actual range into 8 bits
        a = np.asarray(image, dtype=np.float64)
        span = a.max() - a.min()
        a = (a - a.min()) / span * 255 if span > 0 else np.zeros_like(a)
        return Image.fromarray(a.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def _canny(image: Image.Image, values: dict[str, float]) -> Image.Image:
    # exactly controlnet-aux CannyDetector's cv2.Canny call, run at the generation size; the
    # detector itself would round sizes to multiples of 64 and import every annotator (~3 s)
    edges = cv2.Canny(np.asarray(image), values["low_threshold"], values["high_threshold"])
    return Image.fromarray(edges).convert("RGB")


def _lineart(image: Image.Image, size: tuple[int, int], values: dict[str, float]) -> Image.Image:
    # controlnet-aux LineartStandardDetector (weight-free): ink = how much darker a pixel is than
    # its blurred neighbourhood. Run at a short side of 512 px, the scale its sigma is tuned for.
    scale = 512 / min(image.size)
    work = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
        Image.Resampling.LANCZOS,
    )
    x = np.asarray(work, dtype=np.float32)
    g = cv2.GaussianBlur(x, (0, 0), values["gaussian_sigma"])
    intensity = np.min(g - x, axis=2).clip(0, 255)
    inked = intensity[intensity > values["intensity_threshold"]]
    intensity /= max(16.0, float(np.median(inked)) if inked.size else 16.0)
    intensity *= 127
    lines = intensity.clip(0, 255).astype(np.uint8)
    # INTER_AREA keeps thin lines visible when shrinking (bicubic would alias them away)
    shrink = work.width > size[0]
    small = cv2.resize(lines, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return Image.fromarray(small).convert("RGB")

"""What Generate takes from the canvas: the img2img / inpaint input and the painted mask."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image

from studio.ui.state import StudioState


class CanvasSource(Protocol):
    """What the session reads from the canvas when Generate is pressed."""

    def image(self) -> Image.Image | None: ...
    def mask_array(self) -> np.ndarray | None: ...


def canvas_inputs(
    state: StudioState, canvas: CanvasSource | None
) -> tuple[Image.Image | None, Image.Image | None]:
    """(init image, mask) for the state's mode; ValueError saying what is missing."""
    mode = state.mode
    if mode == "txt2img":
        return None, None
    init = state.init_image or (canvas.image() if canvas is not None else None)
    if init is None:
        raise ValueError(
            f"{mode} needs an image: open, paste or drop one on the canvas, or generate one."
        )
    if mode != "inpaint":
        return init, None
    arr = canvas.mask_array() if canvas is not None else None
    if arr is None:
        raise ValueError("Inpainting needs a mask: paint over the area to repaint.")
    mask = Image.fromarray(arr, "L")
    if mask.size != init.size:  # the canvas shows a result of another size than the input
        mask = mask.resize(init.size, Image.Resampling.NEAREST)
    return init, mask

"""Loading a single-file checkpoint (A1111/ComfyUI layout) fully offline.

The pipeline class comes from the recognised family, the component configs from a local folder
(the shipped `resources/configs/<name>`, or a `<checkpoint>.config/` folder beside the file for
an architecture of one's own), the tokenizers from the shipped CLIP vocabulary. Nothing is
fetched: with no local config diffusers would quietly go to the hub, so one is always given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from studio.engine.checkpoints import Checkpoint
from studio.engine.configs import config_dir, tokenizers_for

# A1111's probe of an SD 2.x UNet (modules/sd_models_config.py): on this fixed input a v-prediction
# UNet's output sits far below the input, an epsilon one's does not
PROBE_THRESHOLD = -1.0


def sidecar_config(path: Path) -> Path | None:
    """A diffusers config folder beside the checkpoint (`model.safetensors.config/`), if any."""
    folder = path.with_name(path.name + ".config")
    return folder if (folder / "model_index.json").is_file() else None


def pipeline_class(checkpoint: Checkpoint) -> Any:
    import diffusers

    if checkpoint.family == "sdxl":
        if checkpoint.refiner:
            return diffusers.StableDiffusionXLImg2ImgPipeline
        if checkpoint.inpaint:
            return diffusers.StableDiffusionXLInpaintPipeline
        return diffusers.StableDiffusionXLPipeline
    if checkpoint.inpaint:
        return diffusers.StableDiffusionInpaintPipeline
    return diffusers.StableDiffusionPipeline


def load_single_file(
    path: Path, checkpoint: Checkpoint, dtype: torch.dtype
) -> tuple[Any, Checkpoint]:
    """The pipeline, and the checkpoint as loading found it (an SD 2.x file's prediction type)."""
    config = sidecar_config(path) or config_dir(checkpoint.config)
    kwargs: dict[str, Any] = {"config": str(config), "local_files_only": True, "dtype": dtype}
    kwargs.update(tokenizers_for(checkpoint.config))
    if checkpoint.family != "sdxl":
        # the app shows every image to the person who asked for it; no NSFW filter model is loaded
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    pipe = pipeline_class(checkpoint).from_single_file(str(path), **kwargs)
    if checkpoint.prediction_type is None:
        prediction = probe_prediction_type(pipe.unet)
        # the 2.1 (768, v) and 2.1-base (512, epsilon) UNets differ only in sample size
        config_name = "sd21-v" if prediction == "v_prediction" else "sd21-base"
        checkpoint = Checkpoint("sd2", config_name, prediction_type=prediction)
    scheduler_overrides: dict[str, Any] = {"prediction_type": checkpoint.prediction_type}
    if checkpoint.zero_snr:
        scheduler_overrides.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **scheduler_overrides)
    return pipe, checkpoint


@torch.no_grad()
def probe_prediction_type(unet: Any) -> str:
    """A1111's test: x = 0.5, t = 999, context = 0.5; mean(unet(x) - x) < -1 means v-prediction."""
    param = next(unet.parameters())
    x = torch.full((1, unet.config.in_channels, 8, 8), 0.5, dtype=torch.float32)
    context = torch.full((1, 2, unet.config.cross_attention_dim), 0.5, dtype=torch.float32)
    t = torch.tensor([999])
    original_dtype = param.dtype
    unet.to(torch.float32)  # the probe's threshold is calibrated in fp32
    try:
        out = unet(x.to(param.device), t.to(param.device), context.to(param.device)).sample
    finally:
        unet.to(original_dtype)
    return "v_prediction" if (out.cpu() - x).mean().item() < PROBE_THRESHOLD else "epsilon"

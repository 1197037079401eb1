"""Precision per device, and the VAE guard that turns a NaN decode into a second, fp32 decode.

- `choose_precision(facts, vae_force_upcast)`: a pure function from device facts to the dtypes of
  the model and of its VAE. CUDA runs fp16, or bf16 where the GPU has it (same range as fp32: no
  overflow); MPS fp16; CPUs fp32 (half precision is slow or missing there). A VAE whose config says
  `force_upcast` (SDXL's) overflows in fp16: it is kept in fp32 from the start.
- `install_vae_guard(vae)`: wraps the VAE's decode (and encode) once per VAE object, so every
  pipeline built from it with `from_pipe` shares the guard. Latents that are not finite after the
  UNet raise a clear error; an fp16 decode that is not finite is decoded again with the VAE in
  fp32, which stays in fp32 afterwards (A1111's `--no-half-vae`, made automatic), and a note says so.
- `decode_guard(pipe)`: a context manager around one pipeline call that yields the notes the guard
  wrote during it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

log = logging.getLogger(__name__)

HALF_DTYPES = (torch.float16, torch.bfloat16)

VAE_RETRY_NOTE = (
    "The VAE overflowed in half precision (a black image); it was decoded again in full "
    "precision and stays in full precision for this model."
)


@dataclass(frozen=True)
class DeviceFacts:
    kind: str  # "cuda" | "mps" | "cpu"
    bf16: bool = False  # the device computes bfloat16 natively (CUDA compute capability >= 8)


@dataclass(frozen=True)
class Precision:
    dtype: torch.dtype  # UNet and text encoders
    vae_dtype: torch.dtype

    @property
    def label(self) -> str:
        name = str(self.dtype).replace("torch.", "")
        if self.vae_dtype == self.dtype:
            return name
        return f"{name}, VAE {str(self.vae_dtype).replace('torch.', '')}"


def choose_precision(facts: DeviceFacts, vae_force_upcast: bool = False) -> Precision:
    if facts.kind == "cpu":
        return Precision(torch.float32, torch.float32)
    dtype = torch.bfloat16 if facts.kind == "cuda" and facts.bf16 else torch.float16
    return Precision(dtype, vae_dtype_for(dtype, vae_force_upcast))


def vae_dtype_for(dtype: torch.dtype, vae_force_upcast: bool) -> torch.dtype:
    # bf16 has fp32's exponent range: only fp16 overflows in SDXL's VAE
    return torch.float32 if dtype == torch.float16 and vae_force_upcast else dtype


def device_facts(device: str) -> DeviceFacts:
    """What `choose_precision` needs to know about this machine's `device` ("cuda:1", "mps", ...)."""
    kind = device.split(":")[0]
    if kind == "cuda" and torch.cuda.is_available():
        return DeviceFacts("cuda", bf16=torch.cuda.is_bf16_supported())
    return DeviceFacts(kind)


def vae_force_upcast(family: str, vae_config: Any) -> bool:
    # AutoencoderKL defaults force_upcast to True, and SD 1.x/2.x configs inherit it although their
    # VAEs decode fine in fp16: only SDXL's is known to overflow
    return family == "sdxl" and bool(getattr(vae_config, "force_upcast", False))


# ---- the VAE guard ---------------------------------------------------------------------------
class NonFiniteLatents(ValueError):
    pass


@dataclass
class VaeGuard:
    vae: Any
    notes: list[str] = field(default_factory=list)
    retries: int = 0

    def decode(self, original: Any, z: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if not bool(torch.isfinite(z).all()):
            raise NonFiniteLatents(
                "The model produced invalid numbers (NaN) while denoising, so there is no image to "
                "decode. Half precision is the usual cause: try another model, sampler or CFG "
                "scale, or run on the CPU in full precision."
            )
        out = original(z.to(self.vae.dtype), *args, **kwargs)
        if self.vae.dtype not in HALF_DTYPES or _finite(out):
            return out
        # the fp16 VAE overflowed: keep it in fp32 from now on and decode the same latents again
        log.warning("VAE decode not finite in %s: decoding again in float32", self.vae.dtype)
        self.vae.to(torch.float32)
        self.retries += 1
        self.notes.append(VAE_RETRY_NOTE)
        return original(z.to(torch.float32), *args, **kwargs)

    def encode(self, original: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        # an fp32 VAE beside an fp16 UNet: encode in the VAE's dtype, hand back the pipeline's
        out = original(x.to(self.vae.dtype), *args, **kwargs)
        if x.dtype == self.vae.dtype:
            return out
        dist = out[0] if isinstance(out, tuple) else out.latent_dist
        cast = type(dist)(dist.parameters.to(x.dtype), deterministic=dist.deterministic)
        if isinstance(out, tuple):
            return (cast, *out[1:])
        out.latent_dist = cast
        return out


def _finite(out: Any) -> bool:
    sample = out[0] if isinstance(out, tuple) else out.sample
    return bool(torch.isfinite(sample).all())


def install_vae_guard(vae: Any) -> VaeGuard:
    """Wrap `vae`'s decode and encode once; the same guard for every later call."""
    guard = vae.__dict__.get("_studio_vae_guard")
    if guard is not None:
        return guard
    guard = VaeGuard(vae)
    for name in ("decode", "encode"):
        original = getattr(vae, name)  # bound, with diffusers' offload hook applied
        wrapped = functools.partial(getattr(guard, name), original)
        # an instance attribute shadows the class's method for this VAE object only
        object.__setattr__(vae, name, functools.update_wrapper(wrapped, original))
    object.__setattr__(vae, "_studio_vae_guard", guard)
    return guard


@dataclass
class GuardReport:
    notes: list[str] = field(default_factory=list)

    @property
    def note(self) -> str:
        return " ".join(dict.fromkeys(self.notes))  # each note once


@contextmanager
def decode_guard(pipe: Any) -> Iterator[GuardReport]:
    """The notes the VAE guard wrote during the block (the guard is installed if it was not)."""
    guard = install_vae_guard(pipe.vae)
    report = GuardReport()
    start = len(guard.notes)
    try:
        yield report
    finally:
        report.notes.extend(guard.notes[start:])

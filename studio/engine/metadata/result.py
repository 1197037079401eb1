"""What reading an image gives back, and what a recipe adds for one saved image."""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.engine.addons.refs import AddonRef
from studio.engine.request import GenerationRequest

SOURCES = ("studio", "a1111", "comfyui", "invokeai", "fooocus", "novelai", "none")


@dataclass(frozen=True)
class ImageMeta:
    """What the recipe adds to the request for one saved image."""

    model_name: str = ""
    model_hash: str = ""
    image_index: int = 0
    seed: int | None = None  # the image's own seed, request.seed + image_index


@dataclass
class ReadResult:
    request: GenerationRequest | None
    source: str  # one of SOURCES
    unmapped: dict[str, str] = field(default_factory=dict)  # seen, but not turned into settings
    warnings: list[str] = field(default_factory=list)
    raw_parameters: str | None = None  # the A1111 text as found, if any
    image_index: int = 0  # position of this image in its batch
    image_seed: int | None = None  # seed of this very image (request.seed + image_index)
    model_name: str | None = None
    model_hash: str | None = None
    app_version: str | None = None  # our version that wrote the recipe
    missing_hashes: dict[str, str] = field(default_factory=dict)  # "init image" -> sha256
    # request fields that hold our default because the value the image names cannot be used
    # (its own value is in `unmapped`): shown as such, never passed off as read
    substituted: list[str] = field(default_factory=list)
    # LoRAs, embeddings and the VAE the image names, with their hashes where it gives them
    # (studio.engine.addons.refs.missing_addons says which of them the user lacks)
    addons: list[AddonRef] = field(default_factory=list)

    def single_image_request(self) -> GenerationRequest | None:
        """The request that regenerates only this image (batch of one, its own seed)."""
        if self.request is None:
            return None
        seed = self.image_seed if self.image_seed is not None else self.request.seed
        return self.request.with_(seed=seed, batch_size=1)

"""Generation settings inside image files: written as A1111 text plus our JSON recipe, read back
from ours, A1111's (also hidden in the pixels), ComfyUI's, InvokeAI's (2.x to 5), Fooocus's and
NovelAI's metadata. What cannot be used is listed in ReadResult.unmapped; a default standing in
for a value the image names is listed in ReadResult.substituted.

Where things go:
- PNG: a `parameters` text chunk (A1111's infotext, tEXt or iTXt) and a `studio_recipe` tEXt
  chunk (the JSON recipe, ASCII, uncompressed so Pillow's 1 MB zTXt limit never bites). Input
  images are embedded up to PNG_IMAGE_BUDGET in all, the rest named by hash, so the text stays
  well under the 64 MB Pillow and our reader accept.
- JPEG and WebP: one EXIF block. UserComment (0x9286) holds the A1111 text as A1111 writes it
  (b"UNICODE\\0" + UTF-16-BE, what piexif's UserComment.dump(encoding="unicode") gives), so A1111's
  reader sees exactly its own format. MakerNote (0x927C) holds RECIPE_MAGIC + the recipe JSON:
  a separate tag, so neither reader ever has to split one string. A JPEG APP1 segment is at most
  64 KB, so the recipe embeds its images only when they fit, else names them by hash.

Reading never executes or unpickles anything: JSON and our own bounds-checked parsers of the
PNG, JPEG, WebP and EXIF containers. Bad metadata becomes a warning; only a file that is not an
image at all raises ValueError.

Modules, one job each:
- result: ImageMeta, ReadResult, SOURCES.
- infotext: A1111 text written from a request, and split back with A1111's quoting.
- a1111: a request from A1111 text. sampler_names: our sampler names <-> A1111's, with its
  per-sampler "Automatic" schedules. comfyui_names: ComfyUI's sampler x scheduler -> ours.
- recipe: our JSON recipe (with the add-ons' names and hashes), written and read back
  type-checked. Add-ons (LoRA tags, embeddings, VAE) go into A1111's `Lora hashes`,
  `TI hashes`, `VAE`, `VAE hash` (studio.engine.addons.refs); comfyui_addons maps ComfyUI's
  LoraLoader, `embedding:` and VAELoader.
- containers: text chunks and EXIF out of PNG/JPEG/WebP. exif: the EXIF block, built and parsed.
- writer: write_image. reader: read_settings. comfyui, invokeai, invokeai_legacy, fooocus,
  novelai: those tools' metadata (foreign: what their readers share). stealth: text in the
  pixels' least-significant bits.
"""

from __future__ import annotations

from studio.engine.metadata.a1111 import read_a1111_text
from studio.engine.metadata.containers import PNG_PARAMETERS_KEY, PNG_RECIPE_KEY
from studio.engine.metadata.exif import EXIF_LIMIT, RECIPE_MAGIC, decode_user_comment, exif_fields
from studio.engine.metadata.infotext import a1111_parameters, split_a1111_text
from studio.engine.metadata.reader import read_settings
from studio.engine.metadata.recipe import APP_ID, recipe_json
from studio.engine.metadata.result import SOURCES, ImageMeta, ReadResult
from studio.engine.metadata.sampler_names import a1111_sampler, effective_karras
from studio.engine.metadata.writer import JPEG_QUALITY, WEBP_QUALITY, image_format, write_image

__all__ = [
    "APP_ID",
    "PNG_PARAMETERS_KEY",
    "PNG_RECIPE_KEY",
    "RECIPE_MAGIC",
    "EXIF_LIMIT",
    "JPEG_QUALITY",
    "WEBP_QUALITY",
    "SOURCES",
    "ImageMeta",
    "ReadResult",
    "effective_karras",
    "a1111_sampler",
    "a1111_parameters",
    "recipe_json",
    "image_format",
    "write_image",
    "exif_fields",
    "decode_user_comment",
    "read_settings",
    "split_a1111_text",
    "read_a1111_text",
]

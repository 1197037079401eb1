"""Diffusion Studio: a desktop image-generation studio on Hugging Face diffusers."""

__version__ = "0.1.0"

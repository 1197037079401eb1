"""Add-ons users bring to a model: LoRAs, textual-inversion embeddings, a VAE, LCM fast mode."""

"""Input normalisation shared by every stage (images, masks, sizes)."""

from .images import as_mask, as_rgb_image, pad_to_multiple

__all__ = ["as_mask", "as_rgb_image", "pad_to_multiple"]

"""Input normalisation shared by every stage (images, masks, sizes) and DICOM reading."""

from .dicom import read_dicom
from .images import as_mask, as_rgb_image, pad_to_multiple

__all__ = ["as_mask", "as_rgb_image", "pad_to_multiple", "read_dicom"]

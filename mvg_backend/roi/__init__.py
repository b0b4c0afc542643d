"""ROIMask: where the disease may change the image (classical computer vision, no learned weights).

``segment(image, domain, region, **options)`` returns a float mask ``[H,W]`` in 0..1 at the input's
size; ``segment_detailed`` also says how it was made. One module per domain: ``chest`` (lung fields;
``mediastinum``: heart and mediastinum from them),
``fundus`` (FOV, optic disc, macula, retina), ``skin`` (lesion), ``generic`` (full, rectangle, user
masks); ``hints`` narrows by words from MVG_PROMPTS, ``postprocess`` shapes the edge, ``evaluate``
scores masks against a manifest (``python -m mvg_backend.roi eval MANIFEST.csv DATA_DIR``).
"""

from .api import (DEFAULT_REGION, DEFAULT_RECT, DOMAINS, GENERIC_REGIONS, REGIONS, REGIONS_BY_DOMAIN,
                  resolve_region, segment, segment_detailed)
from .generic import COMBINE_MODES
from .overlay import overlay
from .postprocess import feather_edge, postprocess
from .types import Analysis, ROIResult

__all__ = [
    "Analysis", "COMBINE_MODES", "DEFAULT_RECT", "DEFAULT_REGION", "DOMAINS", "GENERIC_REGIONS", "REGIONS",
    "REGIONS_BY_DOMAIN", "ROIResult", "feather_edge", "overlay", "postprocess", "resolve_region", "segment",
    "segment_detailed",
]

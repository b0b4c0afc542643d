"""Evaluation of a generated trajectory (one module per measure, plus the gates and the plot).

- :mod:`.clip_i`: CLIP-I, cosine similarity of CLIP image embeddings against the original;
- :mod:`.identity`: SSIM, PSNR and the largest change outside the ROI;
- :mod:`.roi_change`: the change inside the ROI and how monotonic it is;
- :mod:`.smoothness`: frame-to-frame change, flicker (second differences) and its spikes;
- :mod:`.anatomy`: Dice of the pack's own anatomy segmentation against the original's;
- :mod:`.classifier`: a disease classifier's confidence per frame (torchxrayvision, TorchScript/safetensors,
  any callable);
- :mod:`.gates`, :mod:`.plot`, :mod:`.uncertainty` (several seeds), :mod:`.evaluate` (all of it in one call).
"""

from .classifier import (CallableClassifier, InputSpec, TorchClassifier, load_classifier, resolve_label,
                         torchxrayvision_classifier)
from .clip_i import TransformersCLIPEmbedder, clip_i
from .evaluate import Evaluation, evaluate_trajectory
from .gates import Gate, Thresholds

__all__ = ["CallableClassifier", "Evaluation", "Gate", "InputSpec", "Thresholds", "TorchClassifier",
           "TransformersCLIPEmbedder", "clip_i", "evaluate_trajectory", "load_classifier", "resolve_label",
           "torchxrayvision_classifier"]

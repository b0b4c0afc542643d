"""CLIP-I: cosine similarity of CLIP image embeddings of every frame against the original.

The embedder is any callable ``embed(images float32 [N,H,W,3] in 0..1) -> [N,D]``. Two are provided: a local
transformers CLIP vision folder (:class:`TransformersCLIPEmbedder`, never downloads) and, in ComfyUI, the
stock ``CLIP_VISION`` (``nodes/nodes_metrics.py`` wraps its ``encode_image``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import MVGInputError

Embedder = Callable[[np.ndarray], Any]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BATCH = 8


@dataclass
class ClipI:
    values: list[float]  # per frame, cosine similarity to the original
    model: str = ""

    def to_dict(self) -> dict:
        return {"values": self.values, "min": min(self.values), "mean": float(np.mean(self.values)),
                "model": self.model}


def clip_preprocess(images: np.ndarray, size: int, mean=CLIP_MEAN, std=CLIP_STD):
    """CLIP's preprocessing as a torch batch ``[N,3,size,size]``: shortest side to ``size`` (bicubic,
    antialiased), centre crop, 8-bit rounding, normalisation."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))), mode="bicubic",
                      antialias=True, align_corners=False)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    x = x[..., top:top + size, left:left + size]
    x = torch.clamp(x * 255.0, 0, 255).round() / 255.0
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


class TransformersCLIPEmbedder:
    """CLIP image embeddings from a local transformers folder (``CLIPVisionModelWithProjection`` or a full
    ``CLIPModel``), offline only. The projected ``image_embeds`` are used, as in the CLIP-I metric."""

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        import torch
        from transformers import CLIPConfig, CLIPVisionConfig, CLIPVisionModelWithProjection

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise MVGInputError(f"--clip {str(folder)!r}: not a transformers model folder (no config.json). Give "
                                "a local CLIP vision folder, e.g. one saved with save_pretrained(); nothing is "
                                "downloaded.")
        import json

        cfg = json.loads((folder / "config.json").read_text())
        if cfg.get("model_type") == "clip":
            vision = CLIPVisionConfig(**{**CLIPConfig(**cfg).vision_config.to_dict(),
                                         "projection_dim": cfg.get("projection_dim", 512)})
            model = CLIPVisionModelWithProjection.from_pretrained(folder, config=vision, local_files_only=True)
        else:
            model = CLIPVisionModelWithProjection.from_pretrained(folder, local_files_only=True)
        self.model = model.to(device).eval()
        self.device = device
        self.size = int(self.model.config.image_size)
        self.name = folder.name
        self._torch = torch

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = []
        with self._torch.inference_mode():
            for i in range(0, len(images), BATCH):
                x = clip_preprocess(images[i:i + BATCH], self.size).to(self.device)
                out.append(self.model(pixel_values=x).image_embeds.float().cpu().numpy())
        return np.concatenate(out)


def _as_matrix(emb: Any, n: int) -> np.ndarray:
    if hasattr(emb, "detach"):
        emb = emb.detach().float().cpu().numpy()
    emb = np.asarray(emb, dtype=np.float64).reshape(n, -1)
    return emb


def clip_i(frames: np.ndarray, original: np.ndarray, embed: Embedder, *, model: str = "") -> ClipI:
    """Cosine similarity of ``embed(frame)`` to ``embed(original)`` for every frame."""
    ref = _as_matrix(embed(original[None]), 1)[0]
    emb = _as_matrix(embed(frames), len(frames))
    norms = np.linalg.norm(emb, axis=1) * np.linalg.norm(ref)
    if not np.all(np.isfinite(emb)) or np.any(norms == 0):
        raise MVGInputError("CLIP-I: the image encoder returned zero or non-finite embeddings; check the model.")
    values = (emb @ ref) / norms
    return ClipI([float(v) for v in values], model)

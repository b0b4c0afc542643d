"""A batch of images (as ComfyUI passes them) through :func:`segment_detailed`, with previews and a summary."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import MVGInputError
from ..prompts import PromptPlan
from .api import DOMAINS, segment_detailed
from .overlay import overlay


def prompt_hints(prompts: PromptPlan | None) -> tuple[list[str], str | None]:
    """The distinct ``roi_hint`` of the plan's stages, and the plan's domain if it names one."""
    if prompts is None:
        return [], None
    plan = PromptPlan.coerce(prompts)
    hints = list(dict.fromkeys(s.roi_hint.strip() for s in plan.stages if s.roi_hint and s.roi_hint.strip()))
    return hints, plan.domain if plan.domain in DOMAINS else None


AUTO_DOMAIN = "auto"


def resolve_domain(domain: str, prompts: PromptPlan | None) -> str:
    """``domain``, or for ``"auto"`` the connected prompts' domain (a clear error when they give none)."""
    if domain != AUTO_DOMAIN:
        return domain
    if prompts is None:
        raise MVGInputError("domain: 'auto' takes the domain from the prompts input, and nothing is connected "
                            "there; connect MVG Report to Prompts' prompts, or pick the domain (chest_xray, fundus, "
                            "skin, other).")
    plan = PromptPlan.coerce(prompts)
    if plan.domain not in DOMAINS or (plan.domain == "other" and plan.engine == "manual"):
        raise MVGInputError("domain: 'auto' takes the domain from the prompts, but these prompts name none "
                            "(hand-written stages, e.g. MVG Prompt List); pick the domain (chest_xray, fundus, skin, "
                            "other).")
    return plan.domain


def _mask_batch(masks: Any, count: int, name: str) -> np.ndarray | None:
    if masks is None:
        return None
    arr = masks.detach().cpu().float().numpy() if hasattr(masks, "detach") else np.asarray(masks)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] not in (1, count):
        raise MVGInputError(
            f"{name}: got shape {tuple(arr.shape)} for {count} image(s); give one mask, or one per image."
        )
    return arr


def segment_batch(images: Any, domain: str, region: str, *, user_masks: Any = None, keep_masks: Any = None,
                  prompts: PromptPlan | None = None, progress: Callable[[int, int], None] | None = None,
                  **options: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """``(masks [B,H,W], overlays [B,H,W,3], summary)`` for images ``[B,H,W,C]`` (or one ``[H,W,C]``).

    ``user_masks``: ``[B,h,w]`` (one per image) or ``[1,h,w]``/``[h,w]`` (the same for all), resized to
    each image; ``keep_masks`` likewise (what they mark stays untouched). ``prompts``: MVG_PROMPTS; its
    stages' region hints name the region (``region="auto"``) or narrow it, and ``domain="auto"`` takes its
    domain (``resolve_domain``).
    """
    batch = images.detach().cpu().float().numpy() if hasattr(images, "detach") else np.asarray(images)
    if batch.ndim == 3 and batch.shape[-1] in (1, 3, 4):
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[0] == 0:
        raise MVGInputError(f"image: expected a batch [B,H,W,C], got shape {tuple(batch.shape)}; connect an IMAGE.")
    users = _mask_batch(user_masks, batch.shape[0], "mask")
    keeps = _mask_batch(keep_masks, batch.shape[0], "keep_mask")
    chosen, domain = domain, resolve_domain(domain, prompts)
    hints, plan_domain = prompt_hints(prompts)
    source = " (auto: the prompts' domain)" if chosen == AUTO_DOMAIN else ""
    header = [f"MVG ROIMask: domain {domain}{source}, region {region}, {batch.shape[0]} image(s)"]
    if hints:
        header.append(f"region hint(s) from MVG_PROMPTS: {', '.join(map(repr, hints))}")
    if plan_domain and plan_domain != domain:
        header.append(f"WARNING: the prompts are for domain '{plan_domain}' but this node segments '{domain}'.")
    masks, previews, lines = [], [], []
    for i, image in enumerate(batch):
        user = None if users is None else users[i if users.shape[0] > 1 else 0]
        keep = None if keeps is None else keeps[i if keeps.shape[0] > 1 else 0]
        result = segment_detailed(image, domain, region, hint=hints, user_mask=user, keep_mask=keep, **options)
        masks.append(result.mask)
        previews.append(overlay(image, result.mask))
        lines.append(f"image {i + 1}: " + result.describe())
        if progress:
            progress(i + 1, batch.shape[0])
    return np.stack(masks), np.stack(previews).astype(np.float32), "\n".join(header + lines)

"""``segment()``: one entry point over every domain, region, hint, user mask and post-processing step."""

from __future__ import annotations

import logging
from typing import Any, Iterable

import numpy as np

from ..domains import DOMAINS
from ..errors import MVGInputError
from . import generic
from .chest import lung_fields
from .mediastinum import add_heart_and_mediastinum
from .fundus import EYES, analyse_fundus
from .hints import hint_mask, split_hints
from .postprocess import postprocess
from .prep import as_roi_image, check_analysable
from .skin import analyse_skin
from .types import Analysis, ROIResult

REGIONS_BY_DOMAIN: dict[str, tuple[str, ...]] = {
    "chest_xray": ("lungs", "left_lung", "right_lung", "heart", "mediastinum"),
    "fundus": ("retina", "fov", "optic_disc", "macula"),
    "skin": ("lesion",),
    "other": (),
}
GENERIC_REGIONS = ("full", "rectangle")
REGIONS = tuple(dict.fromkeys(r for rs in REGIONS_BY_DOMAIN.values() for r in rs)) + GENERIC_REGIONS
DEFAULT_REGION = {"chest_xray": "lungs", "fundus": "retina", "skin": "lesion", "other": "full"}
DEFAULT_RECT = "0.25, 0.25, 0.75, 0.75"
FAINT = 0.5
"""A user mask whose strongest value is below this (no pixel even half editable) is treated as empty."""
logger = logging.getLogger(__name__)


def resolve_region(domain: str, region: str) -> str:
    """Validate ``domain``/``region``; ``"auto"`` becomes the domain's default region."""
    if domain not in REGIONS_BY_DOMAIN:
        raise MVGInputError(f"domain={domain!r}: use one of {', '.join(DOMAINS)}.")
    if region == "auto":
        return DEFAULT_REGION[domain]
    allowed = REGIONS_BY_DOMAIN[domain] + GENERIC_REGIONS
    if region not in allowed:
        owner = next((d for d, rs in REGIONS_BY_DOMAIN.items() if region in rs), None)
        extra = f" ('{region}' belongs to domain '{owner}')" if owner else ""
        raise MVGInputError(f"region={region!r} is not available for domain '{domain}'{extra}; "
                            f"use one of: auto, {', '.join(allowed)}.")
    return region


def _analyse(rgb: np.ndarray, domain: str, eye: str) -> Analysis:
    check_analysable(rgb, domain)
    if domain == "chest_xray":
        return add_heart_and_mediastinum(lung_fields(rgb))
    if domain == "fundus":
        return analyse_fundus(rgb, eye=eye)
    return analyse_skin(rgb)


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        return value.detach().cpu().float().numpy()
    return np.asarray(value)


def _hints(hint: str | Iterable[str] | None) -> list[str]:
    if hint is None:
        return []
    if isinstance(hint, str):
        items = [hint]
    elif isinstance(hint, (list, tuple, set, frozenset)):
        items = list(hint)
    else:
        raise MVGInputError(f"hint={hint!r}: give words (e.g. 'right lower lung') or a list of them, not a "
                            f"{type(hint).__name__}.")
    bad = [h for h in items if h is not None and not isinstance(h, str)]
    if bad:
        raise MVGInputError(f"hint: {bad[0]!r} ({type(bad[0]).__name__}) is not text; give words such as "
                            "'right lower lung' or 'macula'.")
    return list(dict.fromkeys(p for h in items if h and h.strip() for p in split_hints(h)))


def _peak(user_mask: Any) -> float:
    """The strongest value of a user mask on the 0..1 scale (integers scaled by their type's maximum)."""
    arr = np.asarray(_as_array(user_mask))
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise MVGInputError(f"user mask: data type {arr.dtype} is not a mask; pass numbers (0..1, uint8 or bool).")
    if arr.size == 0:
        raise MVGInputError(f"user mask is empty (shape {arr.shape}); connect a real mask or leave it out.")
    if arr.dtype == np.bool_:
        return float(arr.any())
    peak = float(np.nanmax(arr)) if not np.isnan(arr).all() else 0.0
    return peak / float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else peak


def _narrow(mask: np.ndarray, hints: list[str], domain: str, analysis: Analysis | None, notes: list[str],
            warnings: list[str], auto: bool = False) -> np.ndarray:
    """The mask narrowed to the union of the places the hints name (unchanged if none, or if empty).

    With ``auto`` (region "auto") the places themselves are the region: a hint may name a place outside
    the domain's default region (the heart on a chest X-ray, the optic disc on a fundus photo).
    """
    places = [(h, hint_mask(h, domain, analysis, mask.shape)) for h in hints]
    unknown = [h for h, m in places if m is None]
    if unknown:
        warnings.append(f"region hint {', '.join(map(repr, unknown))} names no place known for {domain}; ignored.")
    known = [m for _, m in places if m is not None]
    if not known:
        return mask
    union = np.logical_or.reduce(known)
    narrowed = union.astype(np.float32) if auto else mask * union
    label = ", ".join(repr(h) for h, m in places if m is not None)
    if not (narrowed >= 0.5).any():
        warnings.append(f"region hint {label} would leave the mask empty; not applied.")
        return mask
    notes.append(f"region hint {label} {'is the region' if auto else 'narrowed the mask'}.")
    return narrowed.astype(np.float32)


def _with_user_mask(mask: np.ndarray | None, user_mask: Any, combine: str, region: str, size: tuple[int, int],
                    notes: list[str], warnings: list[str]) -> np.ndarray:
    """The user mask (resized to ``size``) replacing, united with or intersected with the mask."""
    combined, user_notes = generic.combine(mask, user_mask, combine, size)
    notes.extend(user_notes)
    if mask is not None and combine == "intersect" and not (combined >= 0.5).any():
        warnings.append("intersecting with the user mask would leave the mask empty; the automatic mask is kept.")
        return mask
    notes.append("user mask used as the region (combine=replace)." if combine == "replace"
                 else f"user mask combined with the automatic {region} ({combine}).")
    return combined


def _keep_out(mask: np.ndarray, keep_mask: Any, size: tuple[int, int], notes: list[str],
              warnings: list[str]) -> np.ndarray:
    """The mask with the keep mask's pixels taken out: chest tubes, lines, pacemaker leads, a ruler on a dermoscopy
    image stay untouched even inside the edit region. Where the keep mask is at least 0.5 the result is exactly 0;
    a soft keep edge (a soft brush, a resized mask) ramps the mask down before it (``mask * clip(1 - 2 keep)``)."""
    keep = _as_array(keep_mask)
    if not np.asarray(keep).any():
        notes.append("the keep mask is empty (nothing painted); it is ignored.")
        return mask
    keep, keep_notes = generic.as_user_mask(keep, size, name="keep mask")
    notes.extend(keep_notes)
    kept = mask * np.clip(1.0 - 2.0 * keep, 0.0, 1.0)
    notes.append(f"keep mask: {float((keep >= 0.5).mean()):.1%} of the image is kept untouched.")
    if not (kept >= 0.5).any() and (mask >= 0.5).any():
        warnings.append("the keep mask covers the whole edit region: nothing will be edited.")
    return kept.astype(np.float32)


def segment_detailed(image: Any, domain: str, region: str = "auto", *, hint: str | Iterable[str] | None = None,
                     user_mask: Any = None, combine: str = "replace", rect: Any = DEFAULT_RECT,
                     eye: str = "auto", dilate: int = 0, feather: float = 0.0, fill_holes: bool = False,
                     keep_largest: int = 0, keep_mask: Any = None) -> ROIResult:
    """:func:`segment` plus what happened: notes, warnings, fallbacks and the domain analysis.

    Order: automatic region → hints (with region "auto" the places they name are the region; otherwise they
    narrow it) → user mask (replace/union/intersect/subtract) → post-processing → keep mask (its pixels are
    set to 0 last, so nothing marked there is edited, whatever the steps before did).
    A step that would leave the mask empty is skipped, with a warning.
    """
    auto_region = region == "auto"
    region = resolve_region(domain, region)
    if eye not in EYES:
        raise MVGInputError(f"eye={eye!r}: use one of {', '.join(EYES)}.")
    if combine not in generic.COMBINE_MODES:
        raise MVGInputError(f"combine={combine!r}: use one of {', '.join(generic.COMBINE_MODES)}.")
    hints = _hints(hint)
    peak = None if user_mask is None else _peak(user_mask)
    empty_user = peak is not None and peak <= 0
    faint_user = peak is not None and 0 < peak < FAINT
    if empty_user or faint_user:
        user_mask = None
    replace = user_mask is not None and combine == "replace"
    automatic = region not in GENERIC_REGIONS and not replace
    rgb, notes = as_roi_image(image, need_content=automatic)
    size = rgb.shape[:2]
    warnings: list[str] = []
    if empty_user:
        notes.append("the user mask is empty (nothing painted); it is ignored.")
    if faint_user:
        warnings.append(f"the user mask is faint: its strongest value is {peak:.3g}, so no pixel is even half "
                        "editable; it is treated as empty and ignored. Paint at full strength, or rescale the mask "
                        "to 0..1 (a mask saved at the wrong bit depth?).")
    analysis: Analysis | None = None
    fallback = False

    if replace:
        mask = None
    elif region == "full":
        mask = generic.full(size)
    elif region == "rectangle":
        mask = generic.rectangle(size, rect)
    else:
        analysis = _analyse(rgb, domain, eye)
        mask = analysis.parts[region]
        notes.extend(analysis.notes)
        if region in analysis.fallbacks:
            fallback = True
            warnings.append(f"automatic {region} failed; fell back as noted above.")

    if hints and mask is None:
        notes.append("region hint not used: the user mask replaces the automatic region.")
    elif hints:
        unreadable = None
        if analysis is None and domain in ("chest_xray", "fundus", "skin"):
            try:
                analysis = _analyse(rgb, domain, eye)
            except MVGInputError as exc:  # the region itself needed no analysis: keep it, without the hint
                unreadable = str(exc)
        if unreadable:
            warnings.append(f"region hint not applied: {unreadable}")
        else:
            mask = _narrow(mask, hints, domain, analysis, notes, warnings,
                           auto=auto_region and region not in GENERIC_REGIONS)
    if user_mask is not None:
        mask = _with_user_mask(mask, user_mask, combine, region, size, notes, warnings)

    processed = postprocess(mask, dilate=dilate, feather=feather, fill_holes=fill_holes, keep_largest=keep_largest,
                            warnings=warnings)
    if (processed >= 0.5).any() or not (mask >= 0.5).any():
        mask = processed
    else:
        warnings.append(f"post-processing (dilate={dilate}) would leave the mask empty; skipped.")
    if user_mask is not None and combine == "subtract":  # what the user subtracts stays out after dilate/feather
        keep_mask = user_mask if keep_mask is None else np.maximum(
            generic.as_user_mask(_as_array(user_mask), size)[0], generic.as_user_mask(_as_array(keep_mask), size)[0])
    if keep_mask is not None:
        mask = _keep_out(mask, keep_mask, size, notes, warnings)
    if not (mask > 0).any():
        warnings.append("the mask is EMPTY: nothing will be edited. Draw a mask or pick another region.")
    for message in warnings:
        logger.warning("ROI %s/%s: %s", domain, region, message)
    return ROIResult(mask=mask.astype(np.float32), domain=domain, region=region, notes=notes,
                     warnings=warnings, fallback=fallback, analysis=analysis)


def segment(image: Any, domain: str, region: str = "auto", **options: Any) -> np.ndarray:
    """Region-of-interest mask: float32 ``[H,W]`` in 0..1 at the input's size.

    ``image``: uint8/uint16/float (0..1) array ``[H,W]`` or ``[H,W,3]`` (RGBA and ``[1,H,W,C]`` accepted).
    ``domain``: ``chest_xray``, ``fundus``, ``skin`` or ``other``. ``region``: ``lungs``, ``left_lung``,
    ``right_lung`` (the patient's sides), ``heart``, ``mediastinum``, ``fov``, ``optic_disc``, ``macula``,
    ``retina`` (FOV without the disc), ``lesion``, ``full``, ``rectangle`` or ``auto`` (the domain's default).
    ``options``: ``hint`` (words or a list, e.g. "right lower lung"; with region "auto" the places it names
    are the region), ``user_mask`` + ``combine`` (replace/union/intersect/subtract), ``keep_mask`` (pixels
    that stay untouched whatever the region), ``rect`` ("left, top, right, bottom" fractions), ``eye``
    (auto/left/right),
    ``dilate`` (px; negative erodes), ``feather`` (px), ``fill_holes``, ``keep_largest`` (0 = all).
    """
    return segment_detailed(image, domain, region, **options).mask

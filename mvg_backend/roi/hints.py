"""A region hint in words (``Stage.roi_hint`` of MVG_PROMPTS, e.g. "right lower lung") narrows a mask.

Chest X-ray: a side (``right``/``left``, the patient's; ``bilateral``/``both``) and a zone: the upper,
middle or lower third of each lung's height (``upper``/``apex``/``apical``; ``middle``/``mid``/``hilar``/
``perihilar``/``lingula``; ``lower``/``base``/``basal``/``basilar``/``costophrenic``), or without a zone
``periphery``/``peripheral``/``pleura`` (the lateral third of each lung's width); ``lung``/``lungs`` alone
is both lungs. ``heart``/``cardiac`` is the cardiac silhouette; with ``adjacent``/``enlarging`` it is the
heart dilated into the adjacent lung fields (cardiomegaly: room for the silhouette to grow).
``mediastinum``/``mediastinal`` is the mediastinum, with a zone the upper/middle/lower third of its height;
``retrocardiac`` the lower third; ``aorta``/``aortic`` the upper third.
Fundus: ``macula``/``fovea``, ``disc``/``optic``/``papilla``/``cup``, ``peripapillary`` (a ring one disc
diameter wide around the disc), ``posterior pole`` (2.5 disc diameters around the macula), ``retina``
(the whole FOV), ``superior``/``inferior`` (above/below the disc–macula line).
Skin: ``lesion`` is the lesion; with ``surrounding``/``around``/``margin`` the lesion and a rim of skin
around it (a quarter of its diameter wide), where a growing lesion spreads.
Several places in one hint are separated by ``;`` (e.g. "heart and the adjacent lung fields; right lower
lung"); each is resolved on its own (``split_hints``). Hints with none of these words leave the mask as it
is, and the summary says so.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from .mediastinum import enlarged_heart
from .prep import disk, ellipse_mask
from .types import Analysis

_SIDES = {"right": ("right_lung",), "left": ("left_lung",), "bilateral": ("right_lung", "left_lung"),
          "both": ("right_lung", "left_lung")}
_ZONES = {
    0: ("upper", "apex", "apical", "apices", "apicus"),
    1: ("middle", "mid", "hilar", "perihilar", "hilum", "lingula", "lingular"),
    2: ("lower", "base", "basal", "bases", "basilar", "costophrenic", "basally"),
}
_PERIPHERY = ("periphery", "peripheral", "pleura", "pleural", "subpleural")
_HEART = ("heart", "cardiac", "cardiomegaly", "pericardial")
_ENLARGE = ("adjacent", "enlarging", "enlarged", "enlargement", "growing")
_MEDIASTINUM = ("mediastinum", "mediastinal", "retrocardiac", "aorta", "aortic", "hiatal")
_LUNG = ("lung", "lungs")
_FUNDUS = {
    "macula": ("macula", "macular", "fovea", "foveal", "perifoveal", "parafoveal"),
    "optic_disc": ("disc", "disk", "optic", "papilla", "papillary", "cup"),
    "peripapillary": ("peripapillary",),
    "superior": ("superior", "upper"),
    "inferior": ("inferior", "lower"),
    "posterior_pole": ("posterior",),
    "retina": ("retina", "retinal", "fundus"),
}


def split_hints(hint: str) -> list[str]:
    """The places of one hint: ``"heart; right lower lung"`` -> ``["heart", "right lower lung"]``."""
    return [p.strip() for p in hint.split(";") if p.strip()]


def disk_mask(shape: tuple[int, int], x: float, y: float, radius: float) -> np.ndarray:
    return ellipse_mask(shape, x, y, radius, radius)


def _words(hint: str) -> set[str]:
    return set(re.findall(r"[a-z]+", hint.lower()))


def _zone(part: np.ndarray, zone: int) -> np.ndarray:
    rows = np.flatnonzero(part.max(axis=1) >= 0.5)
    if rows.size == 0:
        return np.zeros_like(part, dtype=bool)
    edges = np.linspace(rows[0], rows[-1] + 1, 4)
    band = np.zeros(part.shape[0], bool)
    band[int(round(edges[zone])) : int(round(edges[zone + 1]))] = True
    return band[:, None] & (part >= 0.5)


def _lateral_third(part: np.ndarray, lateral_is_left: bool) -> np.ndarray:
    cols = np.flatnonzero(part.max(axis=0) >= 0.5)
    band = np.zeros(part.shape[1], bool)
    if cols.size:
        third = (cols[-1] + 1 - cols[0]) / 3
        band[cols[0] : int(round(cols[0] + third))] = lateral_is_left
        band[int(round(cols[-1] + 1 - third)) : cols[-1] + 1] = not lateral_is_left
    return band[None, :] & (part >= 0.5)


def _mediastinal(words: set[str], analysis: Analysis) -> np.ndarray | None:
    parts = analysis.parts
    if words & set(_HEART) and "heart" in parts:
        return enlarged_heart(analysis) if words & set(_ENLARGE) else parts["heart"] >= 0.5
    if words & set(_MEDIASTINUM) and "mediastinum" in parts:
        mediastinum = parts["mediastinum"] >= 0.5
        zones = [z for z, names in _ZONES.items() if words & set(names)]
        if "retrocardiac" in words or "hiatal" in words:
            zones.append(2)
        if words & {"aorta", "aortic"}:
            zones.append(0)
        if zones:
            return np.logical_or.reduce([_zone(mediastinum, z) for z in set(zones)])
        return mediastinum
    return None


def _chest(words: set[str], analysis: Analysis) -> np.ndarray | None:
    if words & set(_HEART + _MEDIASTINUM):
        return _mediastinal(words, analysis)
    sides = [s for w, names in _SIDES.items() if w in words for s in names] or ["right_lung", "left_lung"]
    zones = [z for z, names in _ZONES.items() if words & set(names)]
    periphery = bool(words & set(_PERIPHERY)) and not zones
    if not zones and not periphery and not words & set(_SIDES) and not words & set(_LUNG):
        return None
    out = np.zeros(next(iter(analysis.parts.values())).shape, bool)
    for side in set(sides):
        part = analysis.parts[side]
        if zones:
            out |= np.logical_or.reduce([_zone(part, z) for z in zones])
        elif periphery:
            out |= _lateral_third(part, lateral_is_left=(side == "right_lung"))
        else:
            out |= part >= 0.5
    return out


def _fundus(words: set[str], analysis: Analysis) -> np.ndarray | None:
    found = {name for name, keys in _FUNDUS.items() if words & set(keys)}
    if not found:
        return None
    parts, lm = analysis.parts, analysis.landmarks
    shape = parts["fov"].shape
    out = np.zeros(shape, bool)
    places = found - {"superior", "inferior"}
    if "macula" in places:
        out |= parts["macula"] >= 0.5
    if "optic_disc" in places and "peripapillary" not in places:
        out |= parts["optic_disc"] >= 0.5
    if "posterior_pole" in places:
        out |= disk_mask(shape, lm["macula_x"], lm["macula_y"], 2.5 * lm["disc_d"]) & (parts["fov"] >= 0.5)
    if "retina" in places:
        out |= parts["fov"] >= 0.5
    if "peripapillary" in places:
        disc = (parts["optic_disc"] >= 0.5).astype(np.uint8)
        ring = cv2.dilate(disc, disk(max(1, round(lm["disc_d"])))) > 0
        out |= ring & (disc == 0) & (parts["fov"] >= 0.5)
    if not places:
        out = parts["fov"] >= 0.5
    if found & {"superior", "inferior"} and not found >= {"superior", "inferior"}:
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
        dx, dy = lm["macula_x"] - lm["disc_x"], lm["macula_y"] - lm["disc_y"]
        # signed distance below the disc–macula line (image y grows downwards)
        below = ((xx - lm["disc_x"]) * dy - (yy - lm["disc_y"]) * dx) * (-1 if dx >= 0 else 1) > 0
        out &= below if "inferior" in found else ~below
    return out


def _skin(words: set[str], analysis: Analysis) -> np.ndarray:
    lesion = analysis.parts["lesion"] >= 0.5
    if not words & {"surrounding", "around", "margin", "margins", "rim"} or not lesion.any():
        return lesion
    diameter = 2.0 * np.sqrt(lesion.sum() / np.pi)
    return cv2.dilate(lesion.astype(np.uint8), disk(max(1, round(0.25 * diameter)))) > 0


def hint_mask(hint: str, domain: str, analysis: Analysis | None, size: tuple[int, int]) -> np.ndarray | None:
    """The place a hint names, as a bool mask of ``size``, or None when it names no place this domain knows."""
    words = _words(hint)
    if domain == "skin" and "lesion" in words:
        if analysis is None or "lesion" not in analysis.parts:
            return np.ones(size, bool)
        return _skin(words, analysis)
    if analysis is None:
        return None
    if domain == "chest_xray":
        return _chest(words, analysis)
    if domain == "fundus":
        return _fundus(words, analysis)
    return None

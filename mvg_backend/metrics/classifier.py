"""Classifier confidence along the frames: does the disease actually progress?

A classifier is anything with ``labels`` (a list of names) that maps images float32 ``[N,H,W,3]`` in 0..1 to
probabilities ``[N, len(labels)]``. Three kinds are provided:

- :func:`torchxrayvision_classifier`: the ``torchxrayvision`` chest X-ray models (18 labels incl. Effusion,
  Cardiomegaly, Pneumothorax), imported lazily; their preprocessing (grayscale, centre crop, 224 px, values in
  [-1024, 1024]) is done here.
- :class:`TorchClassifier` via :func:`load_classifier`: a TorchScript file, or a safetensors state dict of a
  named architecture, with a small JSON beside it (input size, normalisation, label names, output activation).
- :class:`CallableClassifier`: any Python callable (the Python API).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import MVGInputError
from .common import finite_list, spearman

XRV_PREFIX = "torchxrayvision:"
XRV_UNTRAINED = "untrained"
"""``torchxrayvision:untrained``: a DenseNet-121 with random weights and the 18 default labels (a plumbing check)."""
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit")
OUTPUTS = ("sigmoid", "softmax", "probabilities")
BATCH = 8

# finding names (MVG_PROMPTS, any domain) and common synonyms -> classifier label names
LABEL_SYNONYMS = {
    "pleural effusion": "Effusion", "effusion": "Effusion", "pleural fluid": "Effusion",
    "pleural thickening": "Pleural_Thickening", "enlarged heart": "Cardiomegaly", "cardiomegaly": "Cardiomegaly",
    "pulmonary edema": "Edema", "pneumothorax": "Pneumothorax", "opacity": "Lung Opacity",
    "lung opacity": "Lung Opacity", "lung lesion": "Lung Lesion",
}


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def resolve_label(wanted: str | Sequence[str] | None, labels: Sequence[str]) -> str | None:
    """The classifier label for a finding or user label (case, ``_`` and synonyms ignored), or ``None``."""
    if wanted is None:
        return None
    options = [wanted] if isinstance(wanted, str) else list(wanted)
    by_norm = {_norm(lbl): lbl for lbl in labels if lbl}
    for want in options:
        if not want:
            continue
        n = _norm(want)
        if n in by_norm:
            return by_norm[n]
        syn = LABEL_SYNONYMS.get(n)
        if syn and _norm(syn) in by_norm:
            return by_norm[_norm(syn)]
        for key, target in LABEL_SYNONYMS.items():  # "small right pleural effusion" -> Effusion
            if re.search(rf"\b{re.escape(key)}\b", n) and _norm(target) in by_norm:
                return by_norm[_norm(target)]
    return None


def label_from_prompts(prompts: Any, labels: Sequence[str]) -> tuple[str | None, str]:
    """The label of the most severe positive ``MVG_PROMPTS`` finding the classifier knows, and a note."""
    findings = [f for f in getattr(prompts, "findings", ()) if getattr(f, "certainty", "positive") == "positive"]
    for f in findings:
        label = resolve_label(f.name, labels)
        if label:
            return label, f"label {label!r} from the MVG_PROMPTS finding {f.name!r}"
    for stage in getattr(prompts, "stages", ()):
        label = resolve_label(stage.prompt, labels)
        if label:
            return label, f"label {label!r} from the stage prompt {stage.prompt!r}"
    names = ", ".join(f.name for f in findings) or "none"
    return None, f"no MVG_PROMPTS finding ({names}) matches the classifier's labels"


@dataclass
class Confidence:
    label: str
    values: list[float | None]
    rho: float | None  # Spearman ρ against frame order
    expected_sign: int  # +1 progression, -1 regression
    classifier: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def signed_rho(self) -> float | None:
        return None if self.rho is None else self.rho * self.expected_sign

    def to_dict(self) -> dict:
        return {"label": self.label, "values": self.values, "spearman_rho": self.rho,
                "expected_sign": self.expected_sign, "signed_rho": self.signed_rho, "classifier": self.classifier,
                "notes": self.notes}


class CallableClassifier:
    """Wraps ``fn(images float32 [N,H,W,3] 0..1) -> [N,L]`` (or ``[N]`` for one label) as a classifier."""

    def __init__(self, fn: Callable[[np.ndarray], Any], labels: Sequence[str], name: str = "callable") -> None:
        self.fn, self.labels, self.name = fn, list(labels), name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = self.fn(images)
        if hasattr(out, "detach"):
            out = out.detach().float().cpu().numpy()
        return np.asarray(out, dtype=np.float64).reshape(len(images), -1)


@dataclass
class InputSpec:
    """How a torch classifier wants its input: size (H, W), channels (1 = grayscale mean, 3 = RGB), values
    ``(x·scale − mean)/std`` with x in 0..1, resize mode, and what its output is."""

    size: tuple[int, int] = (224, 224)
    channels: int = 3
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    scale: float = 1.0
    offset: float = 0.0
    crop: bool = False  # centre-crop to the aspect ratio first (else squash)
    output: str = "sigmoid"

    @classmethod
    def from_json(cls, data: dict, where: str) -> InputSpec:
        size = data.get("input_size", 224)
        size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)
        channels = int(data.get("channels", 3))
        output = data.get("output", "sigmoid")
        if channels not in (1, 3) or len(size) != 2 or output not in OUTPUTS:
            raise MVGInputError(f"{where}: channels must be 1 or 3, input_size an int or [H, W], output one of "
                                f"{', '.join(OUTPUTS)}.")
        return cls(size=size, channels=channels, mean=tuple(data.get("mean", (0.0,))),
                   std=tuple(data.get("std", (1.0,))), scale=float(data.get("scale", 1.0)),
                   offset=float(data.get("offset", 0.0)), crop=bool(data.get("crop", False)), output=output)


def _prepare(images: np.ndarray, spec: InputSpec):
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
    if spec.channels == 1:
        x = x.mean(dim=1, keepdim=True)
    if spec.crop:
        h, w = x.shape[-2:]
        target = spec.size[0] / spec.size[1]
        if h / w > target:
            nh = round(w * target)
            x = x[..., (h - nh) // 2:(h - nh) // 2 + nh, :]
        else:
            nw = round(h / target)
            x = x[..., (w - nw) // 2:(w - nw) // 2 + nw]
    if tuple(x.shape[-2:]) != spec.size:
        x = F.interpolate(x, size=spec.size, mode="bilinear", antialias=True, align_corners=False)
    x = x * spec.scale + spec.offset
    c = x.shape[1]
    mean = torch.tensor(spec.mean if len(spec.mean) == c else spec.mean[:1] * c).view(1, c, 1, 1)
    std = torch.tensor(spec.std if len(spec.std) == c else spec.std[:1] * c).view(1, c, 1, 1)
    return (x - mean) / std


class TorchClassifier:
    """A torch module (TorchScript or eager) with its :class:`InputSpec` and label names."""

    def __init__(self, module: Any, labels: Sequence[str], spec: InputSpec, name: str = "torch",
                 device: str = "cpu") -> None:
        self.module, self.labels, self.spec, self.name, self.device = module.eval(), list(labels), spec, name, device

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(images), BATCH):
                x = _prepare(images[i:i + BATCH], self.spec).to(self.device)
                y = self.module(x)
                if isinstance(y, (tuple, list)):
                    y = y[0]
                y = y.float()
                if self.spec.output == "sigmoid":
                    y = torch.sigmoid(y)
                elif self.spec.output == "softmax":
                    y = torch.softmax(y, dim=-1)
                out.append(y.reshape(y.shape[0], -1).cpu().numpy())
        probs = np.concatenate(out).astype(np.float64)
        if probs.shape[1] != len(self.labels):
            raise MVGInputError(f"classifier {self.name!r}: {probs.shape[1]} outputs but {len(self.labels)} label "
                                "names in its JSON; list one name per output.")
        return probs


def torchxrayvision_classifier(weights: str | None = "densenet121-res224-all", *,
                               weights_file: str | Path | None = None,
                               model: Any = None, device: str = "cpu") -> TorchClassifier:
    """A torchxrayvision model as a classifier. ``weights``: a torchxrayvision weights name, whose state dict
    ``weights_file`` holds (safetensors, or a weights-only ``.pt``; loaded without unpickling), or ``None`` /
    ``"untrained"`` for random weights. The pack never downloads: a name without ``weights_file`` is refused
    with the one-time export command. ``model``: an already built torchxrayvision model."""
    try:
        import torchxrayvision as xrv
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MVGInputError("the torchxrayvision classifier needs the package: pip install torchxrayvision "
                            f"(with torchvision matching your torch). ({e})") from e
    import torch

    name = weights or XRV_UNTRAINED
    if model is None:
        if name == XRV_UNTRAINED:
            model = xrv.models.DenseNet(weights=None)
        elif name not in xrv.models.model_urls:
            known = ", ".join(k for k in xrv.models.model_urls if "-" in k)
            raise MVGInputError(f"torchxrayvision weights {name!r} unknown; use one of {known} or 'untrained'.")
        elif weights_file is not None:
            info = xrv.models.model_urls[name]
            cls = xrv.models.DenseNet if name.startswith("densenet") else xrv.models.ResNet
            model = cls(weights=None, num_classes=len(info["labels"]))
            model.pathologies = model.targets = list(info["labels"])
            model.load_state_dict(_read_state_dict(weights_file))
            if "op_threshs" in info:
                model.op_threshs = torch.tensor(info["op_threshs"])
            if "input_resolution" in info:
                model.input_resolution = info["input_resolution"]
        else:
            raise MVGInputError(
                f"torchxrayvision weights {name!r}: the pack never downloads weights. Export them once (this "
                "downloads them through torchxrayvision): python -c \"import torchxrayvision as xrv, "
                f"safetensors.torch as st; st.save_file(xrv.models.get_model('{name}').state_dict(), "
                f"'{name}.safetensors')\", then put the file in models/classifiers beside a JSON "
                f"{{\"type\": \"torchxrayvision\", \"weights\": \"{name}\", \"file\": \"{name}.safetensors\"}} "
                "and choose that JSON (headless: --classifier that.json).")
    labels = list(getattr(model, "pathologies", None) or getattr(model, "targets", None) or
                  xrv.datasets.default_pathologies)
    calibrated = getattr(model, "op_threshs", None) is not None or getattr(model, "apply_sigmoid", False)
    size = int(getattr(model, "input_resolution", 224))
    spec = InputSpec(size=(size, size), channels=1, scale=2048.0, offset=-1024.0, crop=True,
                     output="probabilities" if calibrated else "sigmoid")
    return TorchClassifier(model.to(device), labels, spec, name=f"torchxrayvision {name}", device=device)


def _read_state_dict(path: str | Path) -> dict:
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise MVGInputError(f"{path.name}: not a weights-only state dict ({e}). Save it as safetensors: "
                            "safetensors.torch.save_file(model.state_dict(), 'model.safetensors').") from e
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _sidecar(path: Path) -> dict:
    side = path.with_suffix(".json")
    if not side.is_file():
        raise MVGInputError(f"classifier {path.name}: no {side.name} beside it. Write one with its labels, e.g. "
                            '{"labels": ["Effusion"], "input_size": 224, "channels": 3, "mean": [0.485, 0.456, 0.406], '
                            '"std": [0.229, 0.224, 0.225], "output": "sigmoid"}')
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MVGInputError(f"{side.name}: not readable JSON ({e}).") from e


def load_classifier(source: str | Path, *, device: str = "cpu") -> TorchClassifier:
    """A classifier from ``torchxrayvision:<weights name>`` (or ``torchxrayvision:untrained``), a TorchScript
    file, a safetensors state dict, or a ``.json`` descriptor; files need a JSON beside them (``model.json`` for
    ``model.pt``) with ``labels`` and the input spec (:class:`InputSpec`). A safetensors file's JSON names its
    ``architecture``: ``torchxrayvision:<weights name>`` or ``torchvision:<model name>``."""
    text = str(source)
    if text.startswith(XRV_PREFIX):
        return torchxrayvision_classifier(text[len(XRV_PREFIX):] or XRV_UNTRAINED, device=device)
    path = Path(source)
    if not path.is_file():
        raise MVGInputError(f"classifier {text!r}: no such file, and not 'torchxrayvision:<weights name>'.")
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        target = data.get("file")
        if data.get("type") == "torchxrayvision" or str(data.get("architecture", "")).startswith(XRV_PREFIX):
            arch = data.get("weights") or str(data.get("architecture", ""))[len(XRV_PREFIX):] or XRV_UNTRAINED
            return torchxrayvision_classifier(arch, weights_file=(path.parent / target) if target else None,
                                              device=device)
        if not target:
            raise MVGInputError(f"{path.name}: a classifier descriptor needs 'file' (the model beside it) or "
                                "'type': 'torchxrayvision'.")
        return _load_file(path.parent / target, data, device)
    return _load_file(path, _sidecar(path), device)


def _load_file(path: Path, data: dict, device: str) -> TorchClassifier:
    import torch

    where = path.name
    labels = data.get("labels")
    arch = str(data.get("architecture", ""))
    if path.suffix == ".safetensors":
        if arch.startswith(XRV_PREFIX):
            return torchxrayvision_classifier(arch[len(XRV_PREFIX):], weights_file=path, device=device)
        if arch.startswith("torchvision:"):
            import torchvision

            if not labels:
                raise MVGInputError(f"{where}: its JSON needs 'labels'.")
            module = torchvision.models.get_model(arch.split(":", 1)[1], weights=None, num_classes=len(labels))
            module.load_state_dict(_read_state_dict(path))
        else:
            raise MVGInputError(f"{where}: a safetensors classifier's JSON needs 'architecture': "
                                "'torchxrayvision:<weights name>' or 'torchvision:<model name>'.")
    elif path.suffix in TORCHSCRIPT_SUFFIXES:
        try:
            module = torch.jit.load(str(path), map_location=device)
        except Exception as e:
            raise MVGInputError(f"{where}: not a TorchScript file ({e}). Save it with torch.jit.script(model)"
                                ".save(...) or torch.jit.trace.") from e
    else:
        raise MVGInputError(f"{where}: use a TorchScript file ({', '.join(TORCHSCRIPT_SUFFIXES)}), a .safetensors "
                            "state dict or a .json descriptor.")
    if not labels or not all(isinstance(x, str) for x in labels):
        raise MVGInputError(f"{where}: its JSON needs 'labels', a list of names, one per output.")
    return TorchClassifier(module.to(device), labels, InputSpec.from_json(data, where), name=path.name, device=device)


def confidence(frames: np.ndarray, classifier: Any, label: str, *, direction: str = "progression",
               notes: Sequence[str] = ()) -> Confidence:
    """The probability of ``label`` per frame, and its Spearman ρ against frame order. In the regression
    direction the expected sign of ρ is negative."""
    labels = list(getattr(classifier, "labels", []))
    resolved = resolve_label(label, labels)
    if resolved is None:
        raise MVGInputError(f"classifier label {label!r} is not one of its labels: "
                            f"{', '.join(x for x in labels if x)}.")
    probs = np.asarray(classifier(frames), dtype=np.float64)
    values = probs[:, labels.index(resolved)]
    sign = -1 if direction == "regression" else 1
    return Confidence(resolved, finite_list(values), spearman(values), sign, getattr(classifier, "name", ""),
                      list(notes))

"""One case end to end: report → prompts → ROI → PIE → transitions → video frames.

- :class:`PipelineConfig`: every node parameter, with the nodes' (= the references') defaults. The CLI
  makes one flag per field (``--transition-steps``), and a batch CSV may override any field by its name.
- :class:`LoadedModels`: the PIE backend (SD checkpoint or diffusers folder, optional fine-tuned UNet, or
  the random-weight tiny model) and the optional SEINE backend, loaded once and reused over cases.
- The stage functions (:func:`prompts_stage`, :func:`roi_stage`, :func:`pie_stage`,
  :func:`transition_stage`) call the same engine functions as the nodes; :func:`run_pipeline` chains them
  and returns the frames, the keyframes, the per-frame provenance, the summaries and each stage's time.

Nothing here writes files: :mod:`mvg_backend.case` does (staged, all or nothing).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .domains import DOMAINS
from .errors import MVGInputError

StageProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: ``stage`` is ``"pie"`` (model steps) or ``"transitions"`` (steps/pairs)."""

NO_TRANSITION = "none"
DTYPES = ("fp32", "fp16", "bf16")


def _opt(default: Any, help: str, choices: tuple | None = None, group: str = "") -> Any:
    return field(default=default, metadata={"help": help, "choices": choices, "group": group})


def _seine_defaults() -> dict[str, Any]:
    from .seine.transition import (DEFAULT_CFG, DEFAULT_FRAMES, DEFAULT_PROMPT, DEFAULT_RESOLUTION, DEFAULT_SAMPLER,
                                   DEFAULT_STEPS, RESOLUTIONS, TRANSITION_METHODS)

    return dict(cfg=DEFAULT_CFG, frames=DEFAULT_FRAMES, prompt=DEFAULT_PROMPT, resolution=DEFAULT_RESOLUTION,
                sampler=DEFAULT_SAMPLER, steps=DEFAULT_STEPS, resolutions=RESOLUTIONS, methods=TRANSITION_METHODS)


_S = _seine_defaults()


@dataclass
class PipelineConfig:
    """Every parameter of the pipeline's nodes, defaults as in the nodes (the PIE/SEINE references')."""

    # ReportToPrompts
    domain: str = _opt("chest_xray", "imaging domain", DOMAINS, "prompts")
    stages: int = _opt(3, "disease stages after the current image (1-16)", None, "prompts")
    direction: str = _opt("progression", "progression (worsening) or regression", ("progression", "regression"),
                          "prompts")
    engine: str = _opt("rules", "rules (offline) or openai-compatible", ("rules", "openai-compatible"), "prompts")
    caption_style: str = _opt("mvg", "stage caption style", ("mvg", "report", "short", "custom"), "prompts")
    template: str = _opt("", "caption template for caption_style custom", None, "prompts")
    llm_model: str = _opt("gpt-4o-mini", "LLM model (engine openai-compatible)", None, "prompts")
    base_url: str = _opt("https://api.openai.com/v1", "LLM API root", None, "prompts")
    api_key_env: str = _opt("OPENAI_API_KEY", "NAME of the environment variable with the API key", None, "prompts")
    temperature: float = _opt(0.2, "LLM temperature", None, "prompts")
    llm_seed: int = _opt(0, "LLM seed", None, "prompts")
    fallback: bool = _opt(True, "use the rule engine if the LLM fails", None, "prompts")
    max_severity: str = _opt("severe", "the most severe stage a finding may reach",
                             ("mild", "moderate", "severe", "end-stage"), "prompts")
    allow_de_novo: bool = _opt(False, "let the LLM stage a disease the report does not mention", None, "prompts")
    timeout: float = _opt(120.0, "seconds per LLM request", None, "prompts")
    max_retries: int = _opt(2, "LLM retries", None, "prompts")
    keep_report_in_metadata: bool = _opt(False, "put the report text in provenance.json (default: its sha256 only)",
                                         None, "prompts")
    # ROIMask
    region: str = _opt("auto", "ROI region (auto = the domain's default)", None, "roi")
    dilate: int = _opt(0, "grow (>0) or shrink (<0) the ROI by pixels", None, "roi")
    feather: float = _opt(0.0, "soft ROI edge in pixels", None, "roi")
    combine: str = _opt("union", "how --mask meets the automatic ROI", ("replace", "union", "intersect"), "roi")
    fill_holes: bool = _opt(False, "fill holes in the ROI", None, "roi")
    keep_largest: int = _opt(0, "keep the N largest ROI pieces (0 = all)", None, "roi")
    eye: str = _opt("auto", "fundus: which eye", ("auto", "left", "right"), "roi")
    rectangle: str = _opt("0.25, 0.25, 0.75, 0.75", "region rectangle: left, top, right, bottom fractions", None,
                          "roi")
    # ProgressiveEdit (PIE)
    rounds: int = _opt(10, "total PIE rounds over all stages", None, "pie")
    strength: float = _opt(0.5, "γ in (0, 1]: a round runs ceil(γ·steps) steps", None, "pie")
    steps: int = _opt(50, "PIE scheduler steps", None, "pie")
    cfg: float = _opt(7.5, "PIE classifier-free guidance", None, "pie")
    beta1: float = _opt(0.01, "β1: change kept outside the ROI", None, "pie")
    beta2: float = _opt(0.75, "β2: change kept inside the ROI", None, "pie")
    seed: int = _opt(0, "PIE seed: round k uses seed + k - 1", None, "pie")
    chain: str = _opt("latent", "latent, or pixel (as the reference)", ("latent", "pixel"), "pie")
    posterior: str = _opt("mode", "VAE latents: posterior mode or seeded sample", ("mode", "sample"), "pie")
    include_original: bool = _opt(True, "the original is frame 0 and the first keyframe", None, "pie")
    negative: str = _opt("", "negative prompt for every stage", None, "pie")
    # SEINE Transition
    transition: str = _opt("seine", "seine (optical_flow without --seine), optical_flow, crossfade, or none (the "
                           "video shows every PIE round)", (*_S["methods"], NO_TRANSITION), "transition")
    transition_frames: int = _opt(_S["frames"], "frames per transition, both keyframes included", None, "transition")
    transition_steps: int = _opt(_S["steps"], "SEINE sampling steps per transition", None, "transition")
    transition_cfg: float = _opt(_S["cfg"], "SEINE classifier-free guidance", None, "transition")
    transition_sampler: str = _opt(_S["sampler"], "SEINE sampler", ("ddpm", "ddim"), "transition")
    transition_seed: int = _opt(0, "transition k uses seed + k - 1", None, "transition")
    transition_prompt: str = _opt(_S["prompt"], "SEINE's text condition (default: the official one)", None,
                                  "transition")
    resolution: str = _opt(_S["resolution"], "where SEINE works", tuple(_S["resolutions"]), "transition")
    # video and DICOM
    fps: float = _opt(8.0, "video frame rate (also the DICOM frame time)", None, "output")
    dicom_color: str = _opt("auto", "DICOM out: auto (grayscale for chest_xray), grayscale or rgb",
                            ("auto", "grayscale", "rgb"), "output")
    dicom_copy_patient: bool = _opt(False, "DICOM out: copy the source DICOM's patient/study identifiers "
                                    "(default: anonymous)", None, "output")

    def replace(self, **changes: Any) -> PipelineConfig:
        return dataclasses.replace(self, **changes)

    def with_overrides(self, overrides: dict[str, Any], *, where: str = "") -> PipelineConfig:
        """A copy with fields overridden by name; string values (CSV cells) are converted to the field's type."""
        types = {f.name: f.type for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for name, value in overrides.items():
            key = name.strip().replace("-", "_")
            if key not in types:
                raise MVGInputError(f"{where}unknown parameter {name!r}; use one of: {', '.join(types)}.")
            changes[key] = convert_value(key, types[key], value, where=where)
        return self.replace(**changes)

    def check(self) -> PipelineConfig:
        """Raise :class:`MVGInputError` naming the first bad field (its CLI flag too) and the fix."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise MVGInputError(f"{_label(f.name, value)}: use one of {', '.join(map(str, choices))}.")
        ranges = {"stages": (1, 16), "rounds": (1, 200), "steps": (1, 1000), "transition_frames": (3, 64),
                  "transition_steps": (1, 1000), "max_retries": (0, 5), "keep_largest": (0, 64)}
        for name, (lo, hi) in ranges.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
                raise MVGInputError(f"{_label(name, value)}: use a whole number from {lo} to {hi}.")
        floats = {"strength": (0.0, 1.0, False), "beta1": (0.0, 1.0, True), "beta2": (0.0, 1.0, True),
                  "cfg": (0.0, 100.0, True), "transition_cfg": (0.0, 100.0, True), "fps": (0.1, 240.0, True),
                  "timeout": (1.0, 600.0, True), "temperature": (0.0, 2.0, True), "feather": (0.0, 512.0, True)}
        for name, (lo, hi, closed) in floats.items():
            value = float(getattr(self, name))
            if not np.isfinite(value) or not (lo <= value <= hi if closed else lo < value <= hi):
                span = f"{lo}..{hi}" if closed else f"({lo}, {hi}]"
                raise MVGInputError(f"{_label(name, value)}: use a value in {span}.")
        from .roi import resolve_region

        try:
            resolve_region(self.domain, self.region)
        except MVGInputError as exc:
            raise MVGInputError(f"{exc} (--region / --domain)") from None
        for name in ("seed", "transition_seed", "llm_seed"):
            if not 0 <= getattr(self, name) <= 2**64 - 1:
                raise MVGInputError(f"{_label(name, getattr(self, name))}: use an integer in 0..2**64-1.")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _label(name: str, value: Any) -> str:
    return f"{name}={value!r} (--{name.replace('_', '-')})"


def convert_value(name: str, kind: Any, value: Any, *, where: str = "") -> Any:
    """``value`` (often a CSV string) as the field's type, or an error naming the parameter."""
    kind = {"str": str, "int": int, "float": float, "bool": bool}.get(kind, kind) if isinstance(kind, str) else kind
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        need = {bool: "true/false", int: "a whole number", float: "a number"}[kind]
        raise MVGInputError(f"{where}{name}={value!r}: use {need}.") from None
    return value


def config_fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(PipelineConfig))


# --- models -------------------------------------------------------------------------------------------


@dataclass
class LoadedModels:
    """The models one run (or a whole batch) uses; load once with :meth:`load`, reuse for every case."""

    pie: Any
    seine: Any = None
    note: str = ""
    files: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    _hashes: list[dict[str, Any]] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, *, checkpoint: str | Path | None = None, model_dir: str | Path | None = None,
             config: str | Path | None = None, unet: str | Path | None = None, seine: str | Path | None = None,
             scheduler: str = "ddim", device: str = "cpu", dtype: str = "fp32", seed: int = 0) -> LoadedModels:
        """SD 1.x from ``checkpoint`` (single file) or ``model_dir`` (diffusers folder), optional fine-tuned
        ``unet``; without either the random-weight tiny model (with :attr:`note` saying so). ``seine``: a SEINE
        checkpoint, run on the SD model's VAE and CLIP text encoder."""
        start = time.perf_counter()
        pie, note = load_pie_backend(checkpoint=checkpoint, model_dir=model_dir, config=config, unet=unet,
                                     scheduler=scheduler, device=device, dtype=dtype, seed=seed)
        files = list(pie.model_files())
        seine_backend = None
        if seine is not None:
            seine_backend = load_seine_backend(seine, pie, device=device, dtype=dtype)
            files.append(str(seine))
        return cls(pie, seine_backend, note, files, time.perf_counter() - start)

    def file_records(self) -> list[dict[str, Any]]:
        """Name, size and sha256 of every model file, hashed once per load (not per case)."""
        if self._hashes is None:
            from .provenance import file_sha256

            self._hashes = [{"name": Path(f).name, "bytes": Path(f).stat().st_size, "sha256": file_sha256(f)}
                            for f in self.files]
        return self._hashes


def _torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise MVGInputError(f"dtype={dtype!r}: use one of {', '.join(DTYPES)}.")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]


def load_pie_backend(*, checkpoint=None, model_dir=None, config=None, unet=None, scheduler: str = "ddim",
                     device: str = "cpu", dtype: str = "fp32", seed: int = 0) -> tuple[Any, str]:
    """``(PIE backend, note)``; the note is non-empty for the random-weight tiny model."""
    from .pie import DiffusersBackend
    from .pie.random_model import NOTE, random_tiny_backend

    if checkpoint is not None and model_dir is not None:
        raise MVGInputError("--checkpoint and --model-dir are alternatives: pass one base model.")
    common = dict(unet=unet, scheduler=scheduler, device=device, dtype=_torch_dtype(dtype))
    if checkpoint is not None:
        return DiffusersBackend.from_single_file(checkpoint, config=config, **common), ""
    if model_dir is not None:
        return DiffusersBackend.from_pretrained(model_dir, **common), ""
    if unet is not None or config is not None:
        raise MVGInputError("--unet and --config need a base model: pass --checkpoint or --model-dir.")
    backend = random_tiny_backend(seed=seed, scheduler=scheduler, device=device, dtype=_torch_dtype(dtype))
    return backend, NOTE


def load_seine_backend(path: str | Path, pie: Any, *, device: str = "cpu", dtype: str = "fp32") -> Any:
    """SEINE's UNet from ``path`` on the PIE backend's VAE and CLIP text encoder (SD 1.x shares them)."""
    from .seine.backend import DiffusersSEINEBackend
    from .seine.loading import read_seine_checkpoint, unet_from_state_dict

    if not all(hasattr(pie, a) for a in ("vae", "text_encoder", "tokenizer")):
        raise MVGInputError("--seine needs a diffusers SD 1.x model for its VAE and CLIP text encoder.")
    checkpoint = read_seine_checkpoint(path)
    network = unet_from_state_dict(checkpoint.state, config=checkpoint.config, device=device,
                                   dtype=_torch_dtype(dtype), name=checkpoint.name)
    backend = DiffusersSEINEBackend(network, pie.vae, pie.text_encoder, pie.tokenizer)
    backend.notes.append(checkpoint.summary)
    return backend


# --- stages ------------------------------------------------------------------------------------------------


def prompts_stage(report: str, config: PipelineConfig, *, cache_dir: str | Path | None = None) -> Any:
    """ReportToPrompts: the report -> :class:`~mvg_backend.prompts.PromptPlan` (the node's ``plan`` call)."""
    from .prompts import LLMSettings, plan

    llm = LLMSettings(model=config.llm_model, base_url=config.base_url, api_key_env=config.api_key_env,
                      temperature=config.temperature, seed=config.llm_seed, timeout=float(config.timeout),
                      max_retries=int(config.max_retries))
    return plan(report, config.domain, stages=config.stages, direction=config.direction, engine=config.engine,
                caption_style=config.caption_style, template=config.template, max_severity=config.max_severity,
                llm=llm, fallback=config.fallback,
                allow_de_novo=config.allow_de_novo, cache_dir=cache_dir)


def roi_stage(image: Any, config: PipelineConfig, plan: Any = None, user_mask: Any = None,
              keep_mask: Any = None) -> tuple[Any, np.ndarray]:
    """ROIMask: ``(ROIResult, overlay [H,W,3])``, the plan's region hints narrowing the automatic region;
    ``keep_mask`` marks what stays untouched (applied last)."""
    from .roi import overlay, segment_detailed
    from .roi.batch import prompt_hints

    hints, _ = prompt_hints(plan)
    result = segment_detailed(image, config.domain, config.region, hint=hints, user_mask=user_mask,
                              combine=config.combine, rect=config.rectangle, eye=config.eye, dilate=config.dilate,
                              feather=config.feather, fill_holes=config.fill_holes,
                              keep_largest=config.keep_largest, keep_mask=keep_mask)
    return result, overlay(image, result.mask)


def pie_stage(backend: Any, image: Any, mask: Any, plan: Any, config: PipelineConfig,
              progress: Callable[[int, int], None] | None = None) -> Any:
    """ProgressiveEdit: :func:`~mvg_backend.pie.progressive_edit` with the config's PIE parameters."""
    from .pie import progressive_edit

    if config.negative:
        from .prompts import PromptPlan

        plan = PromptPlan.coerce(plan)
        plan = dataclasses.replace(plan, stages=tuple(s if s.negative_prompt else dataclasses.replace(
            s, negative_prompt=config.negative) for s in plan.stages))
    return progressive_edit(backend, image, mask, plan, rounds=config.rounds, strength=config.strength,
                            steps=config.steps, guidance=config.cfg, beta1=config.beta1, beta2=config.beta2,
                            seed=config.seed, chain=config.chain, include_original=config.include_original,
                            posterior=config.posterior, progress=progress)


def transition_stage(keyframes: np.ndarray, config: PipelineConfig, seine: Any = None,
                     progress: Callable[[int, int], None] | None = None, mask: np.ndarray | None = None) -> Any:
    """SEINETransition: :func:`~mvg_backend.seine.transition_frames` (or None for ``transition="none"``); with
    ``mask`` (the ROI) nothing moves outside it."""
    from .seine import transition_frames

    if config.transition == NO_TRANSITION:
        return None
    return transition_frames(keyframes, method=config.transition, backend=seine, frames=config.transition_frames,
                             steps=config.transition_steps, cfg=config.transition_cfg,
                             sampler=config.transition_sampler, seed=config.transition_seed,
                             prompt=config.transition_prompt, resolution=config.resolution, progress=progress,
                             mask=mask)


# --- the whole case ----------------------------------------------------------------------------------------


@dataclass
class PipelineResult:
    """``frames``: the video ``[T,H,W,3]`` float32 0..1; ``frame_records``: what each frame is."""

    frames: np.ndarray
    keyframes: np.ndarray
    pie_frames: np.ndarray
    frame_records: list[dict[str, Any]]
    plan: Any
    roi: Any
    overlay: np.ndarray
    pie: Any
    transition: Any
    timings: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def mask(self) -> np.ndarray:
        return self.roi.mask

    @property
    def summary(self) -> str:
        parts = ["== prompts ==", self.plan.describe(), "== ROI ==", self.roi.describe(), "== PIE ==",
                 self.pie.summary]
        if self.transition is not None:
            parts += ["== transitions ==", self.transition.summary]
        parts += ["== video ==", f"{len(self.frames)} frames"] + [f"note: {n}" for n in self.notes]
        return "\n".join(parts)


def frame_provenance(pie: Any, transition: Any) -> list[dict[str, Any]]:
    """For every video frame: ``kind`` original / pie_round / keyframe / interpolated, and ``method``."""

    def from_pie(index: int, record: Any, keyframe: int | None) -> dict[str, Any]:
        if record.stage < 0:
            return {"index": index, "kind": "original", "method": "input", "keyframe": keyframe}
        kind = "keyframe" if keyframe is not None else "pie_round"
        return {"index": index, "kind": kind, "method": "pie", "keyframe": keyframe, "stage": record.stage + 1,
                "stage_name": record.stage_name, "round": record.round, "global_round": record.global_round,
                "seed": record.seed, "strength": record.strength, "pie_frame": record.index}

    if transition is None:
        keyed = {idx: k for k, idx in enumerate(pie.keyframe_indices)}
        return [from_pie(i, r, keyed.get(r.index)) for i, r in enumerate(pie.records)]
    out = []
    for r in transition.records:
        if r.keyframe is not None:
            out.append(from_pie(r.index, pie.records[pie.keyframe_indices[r.keyframe]], r.keyframe))
        else:
            out.append({"index": r.index, "kind": "interpolated", "method": r.method, "transition": r.transition,
                        "position": r.position, "seed": r.seed})
    return out


def run_pipeline(image: Any, report: str | None, config: PipelineConfig, models: LoadedModels, *,
                 mask: Any = None, keep_mask: Any = None, plan: Any = None, progress: StageProgress | None = None,
                 cache_dir: str | Path | None = None) -> PipelineResult:
    """One case: ``report`` (or a ready ``plan``) → prompts → ROI (``mask`` joins it by ``config.combine``;
    ``keep_mask`` is never edited)
    → PIE → transitions. ``image``: any array :func:`~mvg_backend.io.as_rgb_image` accepts (uint8, uint16 or
    float 0..1). Returns the video frames and what made each of them."""
    config.check()
    timings: dict[str, float] = {}
    notes: list[str] = []

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

    def stage_progress(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    if plan is None:
        if report is None or not report.strip():
            raise MVGInputError("report is empty: give the clinical report (a file, or - to read standard input).")
        plan = timed("prompts", lambda: prompts_stage(report, config, cache_dir=cache_dir))
    else:
        timings["prompts"] = 0.0
    roi, overlay_image = timed("roi", lambda: roi_stage(image, config, plan, mask, keep_mask))
    pie = timed("pie", lambda: pie_stage(models.pie, image, roi.mask, plan, config, stage_progress("pie")))
    if models.note:
        pie.notes.append(models.note)
    keyframes = pie.keyframes
    transition = None
    if config.transition != NO_TRANSITION and len(keyframes) < 2:
        notes.append(f"only {len(keyframes)} keyframe (turn include_original on, or use more stages): no "
                     "transitions; the video shows the PIE frames.")
    elif config.transition != NO_TRANSITION:
        transition = timed("transitions", lambda: transition_stage(keyframes, config, models.seine,
                                                                   stage_progress("transitions"), roi.mask))
    frames = pie.frames if transition is None else transition.frames
    return PipelineResult(frames=frames, keyframes=keyframes, pie_frames=pie.frames,
                          frame_records=frame_provenance(pie, transition), plan=plan, roi=roi, overlay=overlay_image,
                          pie=pie, transition=transition, timings=timings, notes=notes)

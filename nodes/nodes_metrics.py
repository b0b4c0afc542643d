"""MVG_Evaluate (metrics, gates, plot) and MVG_ClassifierLoader, as ComfyUI V3 nodes.

The algorithms live in ``mvg_backend.metrics``; this module converts ComfyUI values and wraps the stock
``CLIP_VISION`` as an embedder.
"""

from __future__ import annotations

import os
from typing import Any

import comfy.model_management
import folder_paths
import numpy as np
import torch
from comfy_api.latest import io

from ..mvg_backend.metrics import Thresholds, evaluate_trajectory, load_classifier
from ..mvg_backend.metrics.classifier import TORCHSCRIPT_SUFFIXES, XRV_PREFIX
from ..mvg_backend.metrics.common import as_image, as_region
from ..mvg_backend.metrics.uncertainty import std_map_image
from ..mvg_backend.roi.overlay import overlay
from .mvg_types import MVGPrompts
from .progress import comfy_progress

# ComfyUI's own "classifiers" entry lists extension-less files only, so the pack registers models/classifiers
# (and any extra paths configured for "classifiers") under its own key, which lists every file
CLASSIFIER_FOLDER = "mvg_classifiers"
folder_paths.add_model_folder_path(CLASSIFIER_FOLDER, os.path.join(folder_paths.models_dir, "classifiers"))
for _path in (folder_paths.get_folder_paths("classifiers") if "classifiers" in folder_paths.folder_names_and_paths
              else []):
    folder_paths.add_model_folder_path(CLASSIFIER_FOLDER, _path)
MODEL_SUFFIXES = (*TORCHSCRIPT_SUFFIXES, ".safetensors")
XRV_WEIGHTS = ("densenet121-res224-all", "densenet121-res224-nih", "densenet121-res224-pc", "densenet121-res224-chex",
               "densenet121-res224-rsna", "densenet121-res224-mimic_nb", "densenet121-res224-mimic_ch",
               "resnet50-res512-all", "untrained")
MVGClassifier = io.Custom("MVG_CLASSIFIER")
DOMAIN_CHOICES = ("auto", "chest_xray", "fundus", "skin", "other")
DIRECTION_CHOICES = ("auto", "progression", "regression")


def classifier_choices() -> list[str]:
    """Files in models/classifiers (a sidecar JSON beside a model file is not listed), then torchxrayvision's."""
    files = folder_paths.get_filename_list(CLASSIFIER_FOLDER)
    models = [f for f in files if f.lower().endswith(MODEL_SUFFIXES)]
    stems = {os.path.splitext(f)[0] for f in models}
    descriptors = [f for f in files if f.lower().endswith(".json") and os.path.splitext(f)[0] not in stems]
    return [*models, *descriptors, *(XRV_PREFIX + w for w in XRV_WEIGHTS)]


class ClipVisionEmbedder:
    """ComfyUI's ``CLIP_VISION`` (``comfy.clip_vision.ClipVisionModel``) as an embedder: its projected
    ``image_embeds`` of each image, with ComfyUI's own CLIP preprocessing (shortest side, centre crop)."""

    name = "CLIP_VISION"

    def __init__(self, clip_vision: Any, batch: int = 8) -> None:
        self.clip_vision, self.batch = clip_vision, batch

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch):
                comfy.model_management.throw_exception_if_processing_interrupted()
                x = torch.from_numpy(np.ascontiguousarray(images[i:i + self.batch]))
                emb = self.clip_vision.encode_image(x, crop=True)["image_embeds"]
                out.append(emb.detach().float().cpu().numpy())
        return np.concatenate(out)


class ClassifierLoader(io.ComfyNode):
    """Loads a disease classifier for MVG Evaluate: torchxrayvision, or a TorchScript / safetensors model."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MVG_ClassifierLoader",
            display_name="MVG Classifier Loader",
            category="MVG",
            description="A disease classifier for MVG Evaluate's confidence curve. models/classifiers holds "
                        "TorchScript (.pt/.ts) or .safetensors models, each with a JSON beside it (labels, input "
                        "size, normalisation, output), or .json descriptors. torchxrayvision:<weights> needs the "
                        "torchxrayvision package and its weights exported once as safetensors with a JSON (see README; the pack "
                        "never downloads); "
                        "torchxrayvision:untrained has random weights (a plumbing check).",
            inputs=[
                io.Combo.Input("classifier_name", options=classifier_choices(),
                               tooltip="A file in models/classifiers, or a torchxrayvision model (18 chest X-ray "
                                       "labels incl. Effusion, Cardiomegaly, Pneumothorax)."),
            ],
            outputs=[MVGClassifier.Output(display_name="classifier", tooltip="Connect to MVG Evaluate's classifier."),
                     io.String.Output(display_name="summary",
                                      tooltip="The classifier's name and its output labels, in order.")],
        )

    @classmethod
    def execute(cls, classifier_name: str) -> io.NodeOutput:
        if classifier_name.startswith(XRV_PREFIX):
            source = classifier_name
        else:
            source = folder_paths.get_full_path_or_raise(CLASSIFIER_FOLDER, classifier_name)
        device = str(comfy.model_management.get_torch_device())
        classifier = load_classifier(source, device=device)
        labels = ", ".join(x for x in classifier.labels if x)
        return io.NodeOutput(classifier, f"classifier {classifier.name}: {len(classifier.labels)} outputs ({labels})")


class Evaluate(io.ComfyNode):
    """The paper's evidence for a trajectory: CLIP-I, identity outside the ROI, classifier confidence,
    smoothness and anatomy, with gates and a plot."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        d = Thresholds()
        return io.Schema(
            node_id="MVG_Evaluate",
            display_name="MVG Evaluate",
            category="MVG",
            description="Metrics of a trajectory against the original: CLIP-I (with a CLIP vision model), SSIM / "
                        "PSNR / largest change outside the ROI, mean change inside it and its monotonicity, "
                        "flicker spikes, anatomy Dice (the pack's own segmentation), and a classifier's confidence "
                        "for the finding. Gates default to the MVG paper's thresholds.",
            inputs=[
                io.Image.Input("frames",
                               tooltip="The trajectory (e.g. SEINE Transition's or ProgressiveEdit's frames)."),
                io.Image.Input("original", tooltip="The unedited image (resized to the frames if needed)."),
                io.Mask.Input("mask", tooltip="The ROI (1 = may change), e.g. ROI Mask's output."),
                io.ClipVision.Input("clip_vision", optional=True,
                                    tooltip="From the stock Load CLIP Vision; without it CLIP-I is not evaluated."),
                MVGClassifier.Input("classifier", optional=True, tooltip="From MVG Classifier Loader."),
                MVGPrompts.Input("prompts", optional=True,
                                 tooltip="MVG_PROMPTS: the classifier label (its finding), domain and direction."),
                io.String.Input("transition_summary", optional=True, force_input=True,
                                tooltip="SEINE Transition's summary: marks the keyframes on the plot."),
                io.Image.Input("other_runs", optional=True,
                               tooltip="Other runs of the same case (other seeds), concatenated in one batch, each "
                                       "with as many frames as 'frames': the spread of each metric and a per-pixel "
                                       "std map of the final frame."),
                io.String.Input("label", default="",
                                tooltip="Classifier label to follow (e.g. Effusion); empty = from the prompts' "
                                        "findings (Effusion for 'pleural effusion')."),
                io.Combo.Input("domain", options=list(DOMAIN_CHOICES), default="auto",
                               tooltip="For the anatomy check (auto: the prompts' domain)."),
                io.Combo.Input("direction", options=list(DIRECTION_CHOICES), default="auto",
                               tooltip="progression: confidence should rise; regression: fall (auto: the prompts')."),
                io.Float.Input("clip_i_min", default=d.clip_i_min, min=0.0, max=1.0, step=0.01,
                               tooltip="Gate: lowest CLIP-I allowed (paper: 0.75)."),
                io.Float.Input("outside_max_levels", default=round(d.outside_max_change * 255, 4), min=0.0,
                               max=255.0, step=0.5,
                               tooltip="Gate: largest change outside the ROI, in 8-bit levels (default 2 = 2/255)."),
                io.Float.Input("confidence_rho_min", default=d.confidence_rho_min, min=-1.0, max=1.0, step=0.05,
                               tooltip="Gate: Spearman rho of the confidence against frame order (sign flipped "
                                       "for regression)."),
                io.Float.Input("anatomy_dice_min", default=d.anatomy_dice_min, min=0.0, max=1.0, step=0.01,
                               tooltip="Gate: lowest anatomy Dice against the original, outside the ROI."),
                io.Int.Input("flicker_spikes_max", default=d.flicker_spikes_max, min=0, max=1000,
                             tooltip="Gate: flicker spikes allowed."),
                io.Boolean.Input("anatomy", default=True, tooltip="Run the anatomy consistency check."),
            ],
            outputs=[
                io.String.Output(display_name="report",
                                 tooltip="Every metric and gate as JSON (a skipped gate says why)."),
                io.Image.Output(display_name="plot",
                                tooltip="The metrics against frame order, keyframes marked, gates drawn."),
                io.Boolean.Output(display_name="passed",
                                  tooltip="True when every evaluated gate passed (skipped gates do not count)."),
                io.Image.Output(display_name="uncertainty",
                                tooltip="Per-pixel std of the final frame across this run and other_runs (black "
                                        "without other_runs)."),
                # appended (outputs are linked by position)
                io.Image.Output(display_name="roi",
                                tooltip="The mask over the original, as MVG ROI Mask's overlay draws it: the region "
                                        "that was evaluated as the ROI."),
            ],
        )

    @classmethod
    def execute(cls, frames: torch.Tensor, original: torch.Tensor, mask: torch.Tensor, label: str, domain: str,
                direction: str, clip_i_min: float, outside_max_levels: float, confidence_rho_min: float,
                anatomy_dice_min: float, flicker_spikes_max: int, anatomy: bool, clip_vision: Any = None,
                classifier: Any = None, prompts: Any = None, transition_summary: str | None = None,
                other_runs: torch.Tensor | None = None) -> io.NodeOutput:
        from ..mvg_backend.errors import MVGInputError

        progress = comfy_progress(int(frames.shape[0]))
        runs = []
        if other_runs is not None:
            t = int(frames.shape[0])
            if other_runs.shape[0] % t:
                raise MVGInputError(f"other_runs: {other_runs.shape[0]} frames is not a multiple of the "
                                    f"trajectory's {t}; concatenate whole runs of the same length.")
            runs = [other_runs[i:i + t] for i in range(0, other_runs.shape[0], t)]
        thresholds = Thresholds(clip_i_min, outside_max_levels / 255.0, confidence_rho_min, anatomy_dice_min,
                                flicker_spikes_max)
        m = mask[0] if mask.ndim == 3 else mask
        result = evaluate_trajectory(
            frames, original[:1], m, clip=ClipVisionEmbedder(clip_vision) if clip_vision is not None else None,
            classifier=classifier, label=label.strip() or None, prompts=prompts,
            domain=None if domain == "auto" else domain, direction=None if direction == "auto" else direction,
            thresholds=thresholds, keyframes=transition_summary, anatomy=anatomy, runs=runs, progress=progress)
        plot = torch.from_numpy(result.plot().astype(np.float32) / 255.0)[None]
        if result.std_map is not None:
            uncertainty = torch.from_numpy(std_map_image(result.std_map))[None]
        else:
            uncertainty = torch.zeros((1, *frames.shape[1:3], 3))
        ref = as_image(original[:1], "original")
        roi = torch.from_numpy(overlay(ref, as_region(m, ref.shape[:2])))[None]
        return io.NodeOutput(result.to_json(), plot, bool(result.passed), uncertainty, roi)


NODES: list[type[io.ComfyNode]] = [ClassifierLoader, Evaluate]

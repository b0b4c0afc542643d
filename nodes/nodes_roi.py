"""ROIMask: automatic regions of interest (lungs, fundus parts, skin lesion) plus user masks, as a V3 node."""

from __future__ import annotations

import torch

from comfy_api.latest import io

from ..mvg_backend.roi import COMBINE_MODES, DEFAULT_RECT, DOMAINS, GENERIC_REGIONS, REGIONS_BY_DOMAIN
from ..mvg_backend.roi.batch import AUTO_DOMAIN, segment_batch
from ..mvg_backend.roi.fundus import EYES
from .mvg_types import MVGPrompts
from .progress import comfy_progress

REGION_CHOICES = ["auto", *dict.fromkeys(r for rs in REGIONS_BY_DOMAIN.values() for r in rs), *GENERIC_REGIONS]


class ROIMask(io.ComfyNode):
    """Where the disease may change the image: an automatic mask, optionally combined with a drawn one."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MVG_ROIMask",
            display_name="MVG ROI Mask",
            category="MVG",
            description="Region of interest for ProgressiveEdit, by classical image analysis (no model weights): "
                        "chest X-ray lung fields, heart and mediastinum, fundus FOV / optic disc / macula / retina, "
                        "skin lesion, or the "
                        "full image / a rectangle; combined with a drawn mask and narrowed by the prompts' hint.",
            inputs=[
                io.Image.Input("image", tooltip="One image or a batch; grayscale, RGB or RGBA, any size."),
                io.Combo.Input("domain", options=[AUTO_DOMAIN, *DOMAINS], default="chest_xray",
                               tooltip="The imaging domain; auto = the domain of the MVG_PROMPTS connected to "
                                       "prompts (MVG Report to Prompts'), so it is set once."),
                io.Combo.Input("region", options=REGION_CHOICES, default="auto",
                               tooltip="auto = the domain's default: lungs (chest_xray), retina (fundus), "
                                       "lesion (skin), full (other); with prompts, the places their hints name "
                                       "(e.g. the heart for cardiomegaly). left/right_lung are the patient's sides."),
                io.Int.Input("dilate", default=0, min=-512, max=512,
                             tooltip="Grow (>0) or shrink (<0) the mask by this many pixels."),
                io.Float.Input("feather", default=0.0, min=0.0, max=512.0, step=1.0,
                               tooltip="Soft edge: ramps from 0 to 1 over this many pixels across the edge."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Your own mask (e.g. Load Image's mask from the mask editor); an empty one "
                                      "is ignored."),
                io.Combo.Input("combine", options=list(COMBINE_MODES), default="union",
                               tooltip="How your mask meets the automatic one: replace it, union, intersect, or "
                                       "subtract (your mask is kept out of the region, untouched)."),
                MVGPrompts.Input("prompts", optional=True,
                                 tooltip="MVG_PROMPTS: the stages' region hints (e.g. 'right lower lung') narrow "
                                         "the mask."),
                io.Boolean.Input("fill_holes", default=False, tooltip="Fill holes in the mask."),
                io.Int.Input("keep_largest", default=0, min=0, max=64,
                             tooltip="Keep only the N largest pieces (0 = keep all)."),
                io.Combo.Input("eye", options=list(EYES), default="auto",
                               tooltip="Fundus only (ignored in other domains): which eye, i.e. where the macula "
                                       "lies from the disc; auto = from the disc's position."),
                io.String.Input("rectangle", default=DEFAULT_RECT,
                                tooltip="Only with region 'rectangle' (ignored otherwise): left, top, right, bottom "
                                        "as fractions 0..1."),
                # appended later: optional, so that workflows saved before it still validate
                io.Mask.Input("keep_mask", optional=True,
                              tooltip="Keep mask: what you paint here (chest tubes, lines, pacemaker leads, a ruler) "
                                      "stays untouched, even inside the region; applied last."),
            ],
            outputs=[
                io.Mask.Output(display_name="mask",
                               tooltip="1 where the disease may change the image (one per input image), for "
                                       "Progressive Edit, SEINE Transition and Evaluate."),
                io.Image.Output(display_name="overlay",
                                tooltip="The mask over the image: tinted red inside, outlined in yellow."),
                io.String.Output(display_name="summary",
                                 tooltip="Domain, region, hints used and each mask's area and how it was found."),
            ],
        )

    @classmethod
    def execute(cls, image: torch.Tensor, domain: str, region: str, dilate: int, feather: float,
                combine: str, fill_holes: bool, keep_largest: int, eye: str, rectangle: str,
                mask: torch.Tensor | None = None, prompts=None, keep_mask: torch.Tensor | None = None) -> io.NodeOutput:
        progress = comfy_progress(int(image.shape[0]))

        masks, previews, summary = segment_batch(
            image, domain, region, user_masks=mask, keep_masks=keep_mask, prompts=prompts, progress=progress,
            combine=combine,
            rect=rectangle, eye=eye, dilate=dilate, feather=feather, fill_holes=fill_holes, keep_largest=keep_largest,
        )
        return io.NodeOutput(torch.from_numpy(masks), torch.from_numpy(previews), summary)


NODES: list[type[io.ComfyNode]] = [ROIMask]

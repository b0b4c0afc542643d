"""ComfyUI adapters: one module per node family; they translate types and delegate to ``mvg_backend``."""

from __future__ import annotations

from typing_extensions import override

from comfy_api.latest import ComfyExtension, io

from . import nodes_dicom, nodes_metrics, nodes_pie, nodes_prompts, nodes_roi, nodes_seine


class MVGExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [*nodes_pie.NODES, *nodes_prompts.NODES, *nodes_roi.NODES, *nodes_seine.NODES,
                *nodes_dicom.NODES, *nodes_metrics.NODES]

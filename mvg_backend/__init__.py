"""ComfyUI-MVG engine: medical disease-progression video generation (MVG, arXiv 2411.11943).

Framework-independent: nothing here imports ComfyUI. Sub-packages follow the method's stages:
``prompts`` (report -> MVG_PROMPTS), ``roi`` (region-of-interest masks), ``pie`` (progressive image editing),
``seine`` (transitions between keyframes), ``io`` (reading and normalising inputs, writing outputs).
"""

__version__ = "0.1.0"

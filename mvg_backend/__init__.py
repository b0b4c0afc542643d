"""ComfyUI-MVG engine: medical disease-progression video generation (MVG, arXiv 2411.11943).

Framework-independent: nothing here imports ComfyUI. Sub-packages follow the method's stages:
``prompts`` (MVG_PROMPTS), ``pie`` (progressive image editing), ``io`` (input normalisation).
"""

__version__ = "0.1.0"

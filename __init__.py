"""ComfyUI-MVG: disease-progression videos from one medical image and its report (ComfyUI entry point).

The nodes are imported when ComfyUI calls the entry point, so importing this package (as pytest does for
the engine tests) needs no ComfyUI.
"""

import logging


async def comfy_entrypoint():
    try:
        from .nodes import MVGExtension
    except Exception:
        logging.exception("ComfyUI-MVG: the node modules failed to import")
        raise
    return MVGExtension()

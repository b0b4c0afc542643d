"""ComfyUI-MVG: disease-progression videos from one medical image and its report (ComfyUI entry point).

The nodes are imported when ComfyUI calls the entry point, so importing this package (as pytest does for
the engine tests) needs no ComfyUI. The entry point also copies the templates' sample images
(``sample_inputs/``) into ComfyUI's input folder, so that the templates run as shipped.
"""

import logging
import shutil
from pathlib import Path

SAMPLE_INPUTS = Path(__file__).resolve().parent / "sample_inputs"


def copy_sample_inputs(input_dir: str | Path, source: Path = SAMPLE_INPUTS) -> list[str]:
    """Copy each sample image that ``input_dir`` lacks into it; a file already there is never touched.

    Returns the names copied. One log line says what happened.
    """
    target = Path(input_dir)
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for src in sorted(source.glob("*.png")):
        try:
            dst = open(target / src.name, "xb")  # "x": never overwrite
        except FileExistsError:
            continue
        try:
            with dst, open(src, "rb") as data:
                shutil.copyfileobj(data, dst)
        except OSError:
            (target / src.name).unlink(missing_ok=True)  # no half-written image left behind
            raise
        copied.append(src.name)
    if copied:
        logging.info("ComfyUI-MVG: copied the templates' sample images to %s: %s", target, ", ".join(copied))
    else:
        logging.info("ComfyUI-MVG: the templates' sample images are already in %s", target)
    return copied


async def comfy_entrypoint():
    try:
        from .nodes import MVGExtension
    except Exception:
        logging.exception("ComfyUI-MVG: the node modules failed to import")
        raise
    import folder_paths

    try:
        copy_sample_inputs(folder_paths.get_input_directory())
    except OSError as exc:  # a read-only input folder must not stop the nodes from loading
        logging.warning("ComfyUI-MVG: could not copy the sample images into ComfyUI's input folder (%s); "
                        "the templates then need an image picked in Load Image", exc)
    return MVGExtension()

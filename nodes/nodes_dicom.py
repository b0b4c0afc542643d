"""DICOM in and out as ComfyUI V3 nodes: MVG Load DICOM and MVG Save DICOM (multi-frame Secondary Capture cine)."""

from __future__ import annotations

import os

import folder_paths
import torch
from comfy_api.latest import io

from ..mvg_backend import __version__
from ..mvg_backend.io.dicom_info import WINDOW_MODES, load_dicom_frames
from ..mvg_backend.io.dicom_write import COLOR_MODES, color_mode_for_frames, write_multiframe_sc

DICOM_SUFFIXES = (".dcm", ".dicom")
NO_SOURCE = "none"


def dicom_files() -> list[str]:
    """``.dcm``/``.dicom`` files in ComfyUI's input folder (top level, as Load Image lists images)."""
    root = folder_paths.get_input_directory()
    try:
        names = os.listdir(root)
    except OSError:
        return []
    return sorted(f for f in names if f.lower().endswith(DICOM_SUFFIXES) and os.path.isfile(os.path.join(root, f)))


class LoadDICOM(io.ComfyNode):
    """A DICOM image (or one frame / all frames of a multi-frame file) as IMAGE, windowed as a viewer shows it."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MVG_LoadDICOM",
            display_name="MVG Load DICOM",
            category="MVG",
            description="Loads a .dcm from the input folder (upload one with the button): rescale slope/intercept, "
                        "window, MONOCHROME1 inverted. The summary names no patient, study or institution.",
            inputs=[
                io.Combo.Input("dicom", options=dicom_files(), upload=io.UploadType.image,
                               tooltip="A .dcm/.dicom file in ComfyUI's input folder. In the upload dialog choose "
                                       "'All files' if .dcm files are hidden."),
                io.Int.Input("frame", default=0, min=-1, max=100000,
                             tooltip="Multi-frame files: which frame (0-based); -1 loads every frame as a batch."),
                io.Combo.Input("window", options=list(WINDOW_MODES), default="file",
                               tooltip="file: the file's window (else its VOI LUT, else min..max); min-max; custom: "
                                       "the centre/width below."),
                io.Float.Input("center", default=40.0, min=-100000.0, max=100000.0, step=1.0,
                               tooltip="Custom window centre, in the file's values after rescale (e.g. HU for CT)."),
                io.Float.Input("width", default=400.0, min=1.0, max=200000.0, step=1.0,
                               tooltip="Custom window width (e.g. 400 for CT soft tissue, 1500 for lung)."),
            ],
            outputs=[io.Image.Output(display_name="image",
                                     tooltip="The windowed image (or a batch of frames), grayscale as RGB, 0..1."),
                     io.String.Output(display_name="summary",
                                      tooltip="Modality, size, frames and the window used; no patient, study or "
                                              "institution.")],
        )

    @classmethod
    def execute(cls, dicom: str, frame: int, window: str, center: float, width: float) -> io.NodeOutput:
        path = folder_paths.get_annotated_filepath(dicom)
        images, summary = load_dicom_frames(path, frame=frame, window=window, center=center, width=width)
        return io.NodeOutput(torch.from_numpy(images), summary)

    @classmethod
    def fingerprint_inputs(cls, dicom: str, **_: object) -> float:
        return os.path.getmtime(folder_paths.get_annotated_filepath(dicom))

    @classmethod
    def validate_inputs(cls, dicom: str, **_: object) -> bool | str:
        if not folder_paths.exists_annotated_filepath(dicom):
            return f"MVG Load DICOM: no DICOM file {dicom!r} in the input folder; upload it or pick another."
        return True


class SaveDICOM(io.ComfyNode):
    """The frames as ONE multi-frame DICOM Secondary Capture that DICOM viewers play as a cine loop."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MVG_SaveDICOM",
            display_name="MVG Save DICOM",
            category="MVG",
            description="Writes the frames as one multi-frame Secondary Capture (grayscale byte or true colour) to "
                        "the output folder: new Study/Series/Instance UIDs, DERIVED\\SECONDARY, marked 'SYNTHETIC — "
                        "MVG simulation', frame time from fps. Anonymous unless copy_patient is on.",
            inputs=[
                io.Image.Input("images", tooltip="The frames, in order (e.g. SEINE Transition's frames)."),
                io.String.Input("filename_prefix", default="MVG/synthetic"),
                io.Float.Input("fps", default=8.0, min=0.1, max=240.0, step=0.1,
                               tooltip="Cine speed: frame time = 1000/fps ms (use the video's fps)."),
                io.Combo.Input("color", options=list(COLOR_MODES), default="auto",
                               tooltip="auto: grayscale (Multi-frame Grayscale Byte SC) when the frames are gray, "
                                       "else RGB (Multi-frame True Color SC)."),
                io.Combo.Input("source_dicom", options=[NO_SOURCE, *dicom_files()], default=NO_SOURCE,
                               tooltip="The DICOM the frames were made from (input folder); used only with "
                                       "copy_patient."),
                io.Boolean.Input("copy_patient", default=False,
                                 tooltip="Copy the source's patient and study identifiers into the new object. "
                                         "Off: the DICOM is anonymous."),
            ],
            outputs=[io.String.Output(display_name="summary",
                                      tooltip="The file written (in the output folder), its frames, size, colour, "
                                              "fps and whether it is anonymous.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images: torch.Tensor, filename_prefix: str, fps: float, color: str, source_dicom: str,
                copy_patient: bool) -> io.NodeOutput:
        source = None if source_dicom == NO_SOURCE else folder_paths.get_annotated_filepath(source_dicom)
        output_dir = folder_paths.get_output_directory()
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, output_dir, images.shape[2], images.shape[1])
        name = f"{filename}_{counter:05}_.dcm"
        mode = color_mode_for_frames(images, color)
        write_multiframe_sc(os.path.join(folder, name), images, fps, color=mode, source=source,
                            copy_patient=copy_patient, description=f"{images.shape[0]} frames",
                            software_version=f"ComfyUI-MVG {__version__}")
        where = f"{subfolder}/{name}" if subfolder else name
        summary = (f"wrote {where}: {images.shape[0]} frames, {images.shape[2]}x{images.shape[1]}, {mode}, "
                   f"{fps:g} fps, {'patient/study identifiers copied' if copy_patient else 'anonymous'}")
        return io.NodeOutput(summary, ui={"text": [summary]})


NODES: list[type[io.ComfyNode]] = [LoadDICOM, SaveDICOM]

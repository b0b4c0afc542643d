"""Pickled weight files (``.pt``/``.ckpt``/``.pth``/``.bin``), checked without unpickling anything.

A pickle is a program: loading one may import and call any Python function it names (``os.system``...).
The pack never unpickles anything but tensors. :func:`scan_pickle` reads a file's pickle opcodes with
``pickletools.genops`` (which decodes, and never imports or calls) and lists every global the pickle
would import; :func:`refuse_code_pickle` stops with a clear :class:`MVGInputError` when one of them is
not on the list of tensor-rebuilding globals that ``torch.load(weights_only=True)`` accepts. This does not
depend on the wording of torch's own refusal, which changes between releases.

The one way past it is explicit: :func:`convert_to_safetensors` (``python -m mvg_backend convert IN
OUT.safetensors --trust-pickle``) unpickles a file the user trusts, once, and writes its tensors as
safetensors.
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MVGInputError

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
               "BINUNICODE8"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_EXTENSIONS = {"EXT1", "EXT2", "EXT4"}  # copyreg's extension registry: imports like a global
_LEGACY_PICKLES = 5  # torch's legacy (non-zip) format: magic, protocol, sys info, data, storage keys
_FALLBACK_ALLOWED = {"collections.OrderedDict", "collections.Counter", "_codecs.encode", "builtins.set",
                     "builtins.frozenset", "builtins.bytearray", "builtins.complex"}


@dataclass
class PickleScan:
    """What a pickled file would import. ``complete``: every pickle in it decoded to its end."""

    imports: list[str] = field(default_factory=list)
    complete: bool = True
    problem: str = ""

    @property
    def code_imports(self) -> list[str]:
        """The imports that are not tensor-rebuilding globals torch's weights-only loader accepts."""
        allowed = tensor_globals()
        return [name for name in self.imports
                if name not in allowed and not (not allowed and name.startswith("torch."))]


def tensor_globals() -> set[str]:
    """The globals ``torch.load(weights_only=True)`` accepts (its built-in list plus user-added ones)."""
    try:
        from torch import _weights_only_unpickler as unpickler

        allowed = set(unpickler._get_allowed_globals()) | set(unpickler._get_user_allowed_globals())
    except Exception:  # a torch without these internals: torch's own names plus the containers
        return set(_FALLBACK_ALLOWED)
    return allowed | _FALLBACK_ALLOWED


def _imports(stream: io.BufferedIOBase) -> list[str]:
    """The globals one pickle in ``stream`` names, decoding up to its STOP (raises ValueError if it is cut)."""
    found: list[str] = []
    pushed: list[Any] = []  # recent values pushed: strings (for STACK_GLOBAL), None for anything else
    memo: dict[int, Any] = {}
    for opcode, arg, _pos in pickletools.genops(stream):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append(f"{module}.{attr}")
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            module, attr = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
            found.append(f"{module}.{attr}" if isinstance(module, str) and isinstance(attr, str)
                         else "<a global named by computed strings>")
            pushed.append(None)
        elif name in _EXTENSIONS:
            found.append(f"<copyreg extension {arg}>")
            pushed.append(None)
        elif name in _STRING_OPS:
            pushed.append(arg if isinstance(arg, str) else None)
        elif name in _MEMO_GET:
            pushed.append(memo.get(arg))
        elif name in _MEMO_PUT:
            memo[arg] = pushed[-1] if pushed else None
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif opcode.stack_after:
            pushed.append(None)
        del pushed[:-64]
    return list(dict.fromkeys(found))


def _pickles(path: Path) -> Iterator[tuple[str, io.BufferedIOBase]]:
    """The pickle streams of a file: a torch zip's ``data.pkl``, else the file itself."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not names:
                raise ValueError("a zip archive without a data.pkl (not a torch.save file)")
            for entry in names:
                with archive.open(entry) as stream:
                    yield entry, stream
        return
    with open(path, "rb") as stream:
        yield path.name, stream


def scan_pickle(path: str | os.PathLike) -> PickleScan:
    """The globals a pickled weight file would import, read from its opcodes without executing any.

    Reads a torch zip file's ``data.pkl``, or the leading pickles of a legacy torch file or a plain pickle.
    A file that is cut short or not a pickle gives ``complete=False`` (and whatever it named before that).
    """
    p = Path(path)
    scan = PickleScan()
    try:
        for _, stream in _pickles(p):
            size = None if not hasattr(stream, "seek") else stream.seek(0, io.SEEK_END)
            stream.seek(0)
            for index in range(_LEGACY_PICKLES):
                try:
                    scan.imports += [n for n in _imports(stream) if n not in scan.imports]
                except ValueError as exc:
                    if index == 0:  # not even one pickle: cut short, or not a pickle at all
                        scan.complete, scan.problem = False, str(exc).splitlines()[0][:120]
                    break  # after the first pickle: the legacy format's raw tensor bytes follow
                if size is not None and stream.tell() >= size:
                    break
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        scan.complete, scan.problem = False, str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    return scan


def code_pickle_message(path: Path, what: str, imports: list[str], fix: str) -> str:
    shown = ", ".join(imports[:4]) + (f" and {len(imports) - 4} more" if len(imports) > 4 else "")
    return (
        f"{what} {path.name!r} holds executable Python objects besides its tensors (its pickle would import "
        f"{shown}). Unpickling it could run code stored in the file, and this pack never unpickles anything but "
        f"tensors, so it will not load it. If you trust the file, convert it once and use the converted file:\n"
        f"    {fix}"
    )


def refuse_code_pickle(path: str | os.PathLike, what: str, fix: str) -> PickleScan:
    """Raise :class:`MVGInputError` (naming ``what``, the globals, and ``fix``) if ``path``'s pickle would import
    anything but tensor-rebuilding globals; return the scan otherwise (possibly ``complete=False``: a cut or
    non-pickle file, for the caller's loader to report)."""
    p = Path(path)
    scan = scan_pickle(p)
    if scan.code_imports:
        raise MVGInputError(code_pickle_message(p, what, scan.code_imports, fix))
    return scan


def convert_command(src: str | os.PathLike, dst: str | os.PathLike) -> str:
    """The explicit conversion a user runs once for a trusted pickled file."""
    return f"python -m mvg_backend convert {src} {dst} --trust-pickle"


# ------------------------------------------------------------------------------ the explicit conversion
def save_safetensors(tensors: Mapping[str, Any], dst: Path, metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` to ``dst`` atomically (a ``.part`` file renamed into place). Tensors that share storage
    are copied (safetensors stores each tensor once)."""
    from safetensors.torch import save_file

    seen: set[int] = set()
    out = {}
    for key, tensor in tensors.items():
        pointer = tensor.untyped_storage().data_ptr()
        out[key] = tensor.detach().clone() if pointer in seen else tensor.detach().contiguous()
        seen.add(pointer)
    partial = dst.with_name(dst.name + ".part")
    try:
        save_file(out, str(partial), metadata=metadata)
        os.replace(partial, dst)
    finally:
        partial.unlink(missing_ok=True)


def check_convert_paths(source: Path, target: Path, trust_pickle: bool) -> None:
    """The checks every conversion makes before unpickling anything."""
    if not trust_pickle:
        raise MVGInputError(
            f"converting {source.name!r} unpickles it, which can run code stored in the file. Pass --trust-pickle "
            "only for a file from a source you trust."
        )
    if source.is_dir():
        raise MVGInputError(f"{str(source)!r} is a folder; give the pickled file (.pt/.ckpt/.bin) to convert.")
    if not source.is_file():
        raise MVGInputError(f"{str(source)!r} does not exist; check the path.")
    if target.suffix.lower() != ".safetensors":
        raise MVGInputError(f"output {target.name!r}: the converted file must end in .safetensors.")
    if target.exists():
        raise MVGInputError(f"output {str(target)!r} exists; remove it or choose another name.")
    if not target.parent.is_dir():
        raise MVGInputError(f"output {str(target)!r}: the folder {str(target.parent)!r} does not exist; create it first.")


def unpickle_trusted(source: Path) -> Any:
    """``torch.load(weights_only=False)``: only for :func:`convert_to_safetensors` and SEINE's converter."""
    import pickle

    import torch

    try:
        return torch.load(str(source), map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError,
            AttributeError, ModuleNotFoundError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else "no detail"
        raise MVGInputError(
            f"{source.name!r} ({source.stat().st_size:,} bytes) could not be unpickled ({type(exc).__name__}: {detail}). "
            "It is truncated or corrupt, or needs a Python package that is not installed."
        ) from None


def convert_to_safetensors(src: str | os.PathLike, dst: str | os.PathLike, *,
                           trust_pickle: bool = False) -> tuple[int, list[str]]:
    """Unpickle a trusted checkpoint once and write its tensors to ``dst`` (``.safetensors``, atomically).

    A ``state_dict`` entry (nested ones too, as in Lightning ``.ckpt`` files) is unwrapped; entries that are
    not tensors (training step, optimiser settings...) are left out. Returns ``(tensors written, keys left
    out)``. Works for an SD 1.x ``.ckpt`` (then ``--checkpoint OUT.safetensors``) and for a diffusers or
    transformers ``*.bin`` (write ``diffusion_pytorch_model.safetensors`` / ``model.safetensors`` beside it;
    the loaders prefer safetensors).
    """
    import torch

    source, target = Path(src).expanduser(), Path(dst).expanduser()
    check_convert_paths(source, target, trust_pickle)
    obj = unpickle_trusted(source)
    while isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise MVGInputError(f"{source.name!r} holds a {type(obj).__name__}, not a state dict of tensors.")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    dropped = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not tensors:
        raise MVGInputError(f"{source.name!r} holds no tensors (found {', '.join(dropped[:6]) or 'nothing'}).")
    save_safetensors(tensors, target, {"format": "pt", "source": source.name})
    return len(tensors), dropped

"""The SEINE checkpoint loader: formats, safe reading, refusal of unsafe pickles, the converter, bad files."""

from __future__ import annotations

import argparse

import pytest
import torch
from fixtures.malicious import RunsCode
from fixtures.tiny_seine import (
    make_tiny_seine,
    one_torch_thread,  # noqa: F401  (a fixture)
    write_tiny_seine_checkpoint,
)
from safetensors.torch import load_file, save_file

from mvg_backend.errors import MVGInputError
from mvg_backend.seine import convert_checkpoint, load_seine_unet
from mvg_backend.seine.cli import main as seine_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def reference():
    """``(state_dict, input, timestep, text, eps)`` of the tiny SEINE, for comparing loaded copies."""
    net = make_tiny_seine(3)
    x, text = torch.randn(1, 9, 3, 8, 8), torch.randn(1, 77, 32)
    return net.state_dict(), x, 400, text, net(x, 400, text)


def assert_same_model(net, reference):
    _, x, t, text, eps = reference
    assert not net.training
    assert not any(p.is_meta for p in net.parameters()) and not any(b.is_meta for b in net.buffers())
    assert torch.allclose(net(x, t, text), eps, atol=1e-5)


@pytest.mark.parametrize("suffix,wrap", [
    (".safetensors", None), (".pt", None), (".pt", "ema"), (".ckpt", "state_dict"), (".pth", "model"),
])
def test_formats_load_through_the_same_loader(tmp_path, reference, suffix, wrap):
    state = {k: v.clone() for k, v in reference[0].items()}
    path = tmp_path / f"seine{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({wrap: state, "step": 12, "opt": {"lr": torch.tensor(1e-4)}} if wrap else state, str(path))
    assert_same_model(load_seine_unet(path), reference)


def test_lower_precision_keeps_rotary_frequencies_float32(tmp_path, reference):
    path = write_tiny_seine_checkpoint(tmp_path / "seine.safetensors", seed=3)
    net = load_seine_unet(path, dtype=torch.bfloat16)
    assert net.conv_in.weight.dtype == torch.bfloat16
    freqs = [b for n, b in net.named_buffers() if n.endswith("rotary_emb.freqs")]
    assert freqs and all(f.dtype == torch.float32 for f in freqs)
    _, x, t, text, eps = reference
    assert (net(x, t, text).float() - eps).abs().max() < 0.1 * eps.abs().max()


def unsafe_checkpoint(path, reference):
    """Like the official seine.pt: the EMA weights next to pickled Python objects (training arguments)."""
    torch.save({"ema": dict(reference[0]), "args": argparse.Namespace(model="UNet", num_frames=16)}, str(path))
    return path


def test_unsafe_pickle_is_refused_with_the_conversion_command(tmp_path, reference):
    path = unsafe_checkpoint(tmp_path / "seine.pt", reference)
    with pytest.raises(MVGInputError) as err:
        load_seine_unet(path)
    message = str(err.value)
    assert "'seine.pt'" in message and "holds executable Python objects" in message
    assert "argparse.Namespace" in message and "will not load it" in message
    assert f"python -m mvg_backend.seine convert {path} {tmp_path / 'seine.safetensors'} --trust-pickle" in message
    assert "weights_only" not in message and "corrupt" not in message


@pytest.mark.parametrize("legacy", [False, True])
def test_a_malicious_pickle_never_runs_and_is_explained(tmp_path, reference, legacy):
    """torch 2.13 words its refusal differently ("module posix is blocked"); the message must not depend on it."""
    marker = tmp_path / "pwned"
    path = tmp_path / "seine.pt"
    torch.save({"ema": dict(reference[0]), "payload": RunsCode(marker)}, str(path),
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(MVGInputError) as err:
        load_seine_unet(path)
    assert not marker.exists()
    message = str(err.value)
    assert "holds executable Python objects" in message and ".system" in message
    assert "never unpickles anything but tensors" in message and "will not load it" in message
    assert "--trust-pickle" in message and "truncated" not in message and "weights_only" not in message
    assert seine_cli(["transition", "--keyframes", str(path), str(path), "--seine", str(path), "--sd",
                      str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_converter_needs_the_flag_then_writes_a_loadable_safetensors(tmp_path, reference):
    src = unsafe_checkpoint(tmp_path / "seine.pt", reference)
    dst = tmp_path / "seine.safetensors"
    with pytest.raises(MVGInputError, match="--trust-pickle"):
        convert_checkpoint(src, dst)
    assert not dst.exists()
    resolved = convert_checkpoint(src, dst, trust_pickle=True)
    assert resolved.config.block_out_channels == (32, 64)
    assert set(load_file(str(dst))) == set(reference[0])
    assert_same_model(load_seine_unet(dst), reference)
    with pytest.raises(MVGInputError, match="exists"):
        convert_checkpoint(src, dst, trust_pickle=True)


def test_converter_copes_with_tensors_shared_between_keys(tmp_path, reference):
    """The official model shares one rotary module between all blocks: its 'freqs' is one tensor, many keys."""
    state = dict(reference[0])
    shared = next(v for k, v in state.items() if k.endswith("rotary_emb.freqs"))
    state.update({k: shared for k in state if k.endswith("rotary_emb.freqs")})
    torch.save({"ema": state, "args": argparse.Namespace()}, str(tmp_path / "shared.pt"))
    convert_checkpoint(tmp_path / "shared.pt", tmp_path / "shared.safetensors", trust_pickle=True)
    assert_same_model(load_seine_unet(tmp_path / "shared.safetensors"), reference)


def test_cli_convert(tmp_path, reference, capsys):
    src = unsafe_checkpoint(tmp_path / "seine.pt", reference)
    assert seine_cli(["convert", str(src), str(tmp_path / "a.safetensors")]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    assert seine_cli(["convert", str(src), str(tmp_path / "a.safetensors"), "--trust-pickle"]) == 0
    out = capsys.readouterr().out
    assert "wrote " in out and "a.safetensors" in out and "widths (32, 64)" in out
    assert "GroupNorm 32 groups" in out and "official SEINE values" in out
    assert_same_model(load_seine_unet(tmp_path / "a.safetensors"), reference)


def test_an_sd_unet_given_as_seine(tmp_path, tiny_components):
    unet = tiny_components[0]
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(tmp_path / "sd_unet.safetensors"))
    with pytest.raises(MVGInputError, match="not a SEINE UNet: it is a 2-D diffusers UNet"):
        load_seine_unet(tmp_path / "sd_unet.safetensors")
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
               "first_stage_model.encoder.conv_in.weight": torch.zeros(128, 3, 3, 3)}, str(tmp_path / "sd15.safetensors"))
    with pytest.raises(MVGInputError, match="original-layout Stable Diffusion checkpoint"):
        load_seine_unet(tmp_path / "sd15.safetensors")


def test_a_text_to_video_unet_without_mask_inputs(tmp_path, reference):
    state = {k: v.clone() for k, v in reference[0].items()}
    state["conv_in.weight"] = state["conv_in.weight"][:, :4].contiguous()
    save_file(state, str(tmp_path / "t2v.safetensors"))
    with pytest.raises(MVGInputError, match="conv_in takes 4 channels, but SEINE needs 9"):
        load_seine_unet(tmp_path / "t2v.safetensors")


def test_mismatched_keys_are_listed_with_counts(tmp_path, reference):
    state = {k: v.clone() for k, v in reference[0].items()}
    missing = [k for k in state if ".attn1." in k][:5]
    for k in missing:
        del state[k]
    state["pos_embed"] = torch.zeros(3)
    state["conv_norm_out.weight"] = torch.ones(16)
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(MVGInputError) as err:
        load_seine_unet(tmp_path / "partial.safetensors")
    message = str(err.value)
    assert "'partial.safetensors'" in message
    assert "missing keys 5 (e.g. " in message and missing[0] in message
    assert "unexpected keys 1 (e.g. pos_embed)" in message
    assert "shape conflicts 1 (e.g. conv_norm_out.weight: checkpoint (16,) vs model (32,))" in message


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_or_corrupt_files(tmp_path, suffix):
    good = write_tiny_seine_checkpoint(tmp_path / f"good{suffix}")
    data = good.read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    (tmp_path / f"noise{suffix}").write_bytes(bytes(range(256)) * 8)
    (tmp_path / f"empty{suffix}").write_bytes(b"")
    for name in ("cut", "noise", "empty"):
        with pytest.raises(MVGInputError, match=f"'{name}{suffix}' .* is truncated or corrupt"):
            load_seine_unet(tmp_path / f"{name}{suffix}")


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(MVGInputError, match="does not exist"):
        load_seine_unet(tmp_path / "nope.safetensors")
    (tmp_path / "seine.onnx").write_bytes(b"x")
    with pytest.raises(MVGInputError, match="expected one of .safetensors"):
        load_seine_unet(tmp_path / "seine.onnx")


def test_a_pickle_without_tensors(tmp_path):
    torch.save({"ema": {"note": "no tensors"}}, str(tmp_path / "odd.pt"))
    with pytest.raises(MVGInputError, match="holds no state dict of tensors"):
        load_seine_unet(tmp_path / "odd.pt")


def test_int8_weights_are_refused_by_name(tmp_path, reference):
    state = {k: (v * 100).to(torch.int8) if k.endswith("weight") else v.clone() for k, v in reference[0].items()}
    save_file(state, str(tmp_path / "int8.safetensors"))
    with pytest.raises(MVGInputError, match=r"'int8.safetensors' holds int8 tensors .*quantised.*fp32, fp16 or bf16"):
        load_seine_unet(tmp_path / "int8.safetensors")


def test_a_folder_given_as_the_checkpoint_is_named_as_a_folder(tmp_path):
    with pytest.raises(MVGInputError, match="is a folder; give the checkpoint file in it"):
        load_seine_unet(tmp_path)

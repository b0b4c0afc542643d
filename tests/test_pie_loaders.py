"""Offline loaders: diffusers folder, original-layout single file, fine-tuned UNet; and the shipped config."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fixtures.ldm_layout import unet_to_ldm
from fixtures.malicious import RunsCode
from fixtures.tiny_checkpoints import make_tiny_sd_components, write_tiny_config_folder, write_tiny_ldm_checkpoint
from mvg_backend.cli import main as cli
from mvg_backend.errors import MVGInputError
from mvg_backend.pie import DiffusersBackend, progressive_edit
from mvg_backend.pie.loading import SD15_CONFIG, resolve_unet_dir


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def edit(backend, phantom, seed=0):
    image, mask = phantom
    return progressive_edit(backend, image, mask, "a chest x-ray", rounds=2, steps=6, seed=seed)


@pytest.fixture(scope="module")
def components():
    return make_tiny_sd_components(seed=0)


def test_folder_round_trip(tmp_path, components, phantom):
    folder = write_tiny_config_folder(tmp_path / "sd", *components, with_weights=True)
    loaded = DiffusersBackend.from_pretrained(folder)
    unet, vae, text_encoder, _, _ = components
    assert_same_weights(loaded.unet, unet)
    assert_same_weights(loaded.vae, vae)
    assert_same_weights(loaded.text_encoder, text_encoder)
    assert any(f.endswith("diffusion_pytorch_model.safetensors") for f in loaded.model_files())
    direct = edit(DiffusersBackend(*components), phantom)
    np.testing.assert_array_equal(edit(loaded, phantom).frames, direct.frames)


def test_single_file_round_trip(tmp_path, components, phantom):
    path, comps = write_tiny_ldm_checkpoint(tmp_path / "tiny.safetensors", config_dir=tmp_path / "cfg", seed=0)
    loaded = DiffusersBackend.from_single_file(path, config=tmp_path / "cfg")
    for got, want in zip((loaded.unet, loaded.vae, loaded.text_encoder), comps[:3]):
        assert_same_weights(got, want)
    assert loaded.model_files() == [str(path)]
    np.testing.assert_array_equal(edit(loaded, phantom).frames, edit(DiffusersBackend(*comps), phantom).frames)


def test_fine_tuned_unet_from_pipeline_folder_unet_folder_and_files(tmp_path, components, phantom):
    base = write_tiny_config_folder(tmp_path / "base", *components, with_weights=True)
    tuned = make_tiny_sd_components(seed=1)[0]
    tuned.save_pretrained(tmp_path / "run" / "checkpoint-500" / "unet")  # a training run's layout
    tuned.save_pretrained(tmp_path / "unet_only")
    save_file(tuned.state_dict(), str(tmp_path / "tuned.safetensors"))
    save_file({k: v.contiguous() for k, v in unet_to_ldm(tuned).items()}, str(tmp_path / "tuned_ldm.safetensors"))
    assert resolve_unet_dir(tmp_path / "run" / "checkpoint-500") == tmp_path / "run" / "checkpoint-500" / "unet"
    for source in ("run/checkpoint-500", "unet_only", "tuned.safetensors"):
        backend = DiffusersBackend.from_pretrained(base, unet=tmp_path / source)
        assert_same_weights(backend.unet, tuned)
        assert_same_weights(backend.vae, components[1])
    backend = DiffusersBackend.from_single_file(
        write_tiny_ldm_checkpoint(tmp_path / "b.safetensors", config_dir=tmp_path / "cfg")[0],
        config=tmp_path / "cfg", unet=tmp_path / "tuned_ldm.safetensors")
    assert_same_weights(backend.unet, tuned)
    assert str(tmp_path / "tuned_ldm.safetensors") in backend.model_files()
    assert not np.array_equal(edit(backend, phantom).frames, edit(DiffusersBackend(*components), phantom).frames)


def test_loader_errors(tmp_path, components):
    with pytest.raises(MVGInputError, match="does not exist"):
        DiffusersBackend.from_pretrained(tmp_path / "nope")
    (tmp_path / "half" / "unet").mkdir(parents=True)
    with pytest.raises(MVGInputError, match=r"not a diffusers SD 1.x folder \(missing: \['vae'"):
        DiffusersBackend.from_pretrained(tmp_path / "half")
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(MVGInputError, match=r"expected one of \('.safetensors'"):
        DiffusersBackend.from_single_file(tmp_path / "model.bin")
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(MVGInputError, match="could not be loaded as an SD 1.x single file"):
        DiffusersBackend.from_single_file(tmp_path / "broken.safetensors")
    base = write_tiny_config_folder(tmp_path / "base", *components, with_weights=True)
    (tmp_path / "empty_unet").mkdir()
    with pytest.raises(MVGInputError, match="no config.json in it or in its 'unet/' subfolder"):
        DiffusersBackend.from_pretrained(base, unet=tmp_path / "empty_unet")
    from diffusers import UNet2DConditionModel

    other = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=48,
                                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=8)
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(MVGInputError, match="cross_attention_dim=48 but the base model uses 32"):
        DiffusersBackend.from_pretrained(base, unet=tmp_path / "other")
    save_file({"conv_in.weight": torch.zeros(1)}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(MVGInputError, match="does not fit the base UNet"):
        DiffusersBackend.from_pretrained(base, unet=tmp_path / "partial.safetensors")


def test_shipped_sd15_config_is_the_sd15_architecture():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTokenizer

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(SD15_CONFIG / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(SD15_CONFIG / "vae"))
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    assert CLIPTextConfig.from_pretrained(SD15_CONFIG / "text_encoder").hidden_size == 768
    tok = CLIPTokenizer.from_pretrained(SD15_CONFIG / "tokenizer")
    # OpenAI CLIP BPE ids: <start> a chest x - ray <end>
    assert tok("a chest x-ray").input_ids == [49406, 320, 10563, 343, 268, 3077, 49407]
    assert json.loads((SD15_CONFIG / "scheduler" / "scheduler_config.json").read_text())["beta_schedule"] == \
        "scaled_linear"


# --- pickled weights: never unpickled unless converted explicitly ------------------------------------------
def _ldm_state(tmp_path):
    from safetensors.torch import load_file

    path, comps = write_tiny_ldm_checkpoint(tmp_path / "tiny.safetensors", config_dir=tmp_path / "cfg")
    return load_file(str(path)), comps


def test_a_malicious_ckpt_never_runs_and_is_explained(tmp_path, capsys):
    state, _ = _ldm_state(tmp_path)
    marker = tmp_path / "pwned"
    torch.save({"state_dict": state, "payload": RunsCode(marker)}, str(tmp_path / "evil.ckpt"))
    with pytest.raises(MVGInputError) as err:
        DiffusersBackend.from_single_file(tmp_path / "evil.ckpt", config=tmp_path / "cfg")
    message = str(err.value)
    assert not marker.exists()
    assert "checkpoint 'evil.ckpt' holds executable Python objects" in message and ".system" in message
    assert "never unpickles anything but tensors" in message
    assert f"python -m mvg_backend convert {tmp_path / 'evil.ckpt'} {tmp_path / 'evil.safetensors'} --trust-pickle" \
        in message
    cv2.imwrite(str(tmp_path / "i.png"), np.zeros((32, 32, 3), np.uint8))
    assert cli(["pie", "--image", str(tmp_path / "i.png"), "--prompt", "x", "--checkpoint", str(tmp_path / "evil.ckpt"),
                "--config", str(tmp_path / "cfg"), "--out", str(tmp_path / "out")]) == 2
    assert "holds executable Python objects" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_malicious_bin_in_a_model_folder_never_runs(tmp_path, components):
    folder = write_tiny_config_folder(tmp_path / "sd", *components, with_weights=True)
    marker = tmp_path / "pwned"
    unet_dir = folder / "unet"
    state = dict(components[0].state_dict())
    for f in unet_dir.glob("*.safetensors"):
        f.unlink()
    torch.save({**state, "payload": RunsCode(marker)}, str(unet_dir / "diffusion_pytorch_model.bin"))
    with pytest.raises(MVGInputError) as err:
        DiffusersBackend.from_pretrained(folder)
    assert not marker.exists()
    message = str(err.value)
    assert "the unet weights file 'diffusion_pytorch_model.bin' holds executable Python objects" in message
    assert f"{unet_dir / 'diffusion_pytorch_model.safetensors'} --trust-pickle" in message
    with pytest.raises(MVGInputError, match="holds executable Python objects"):  # as a fine-tuned UNet too
        DiffusersBackend.from_pretrained(write_tiny_config_folder(tmp_path / "b", *components, with_weights=True),
                                         unet=unet_dir)
    assert not marker.exists()


def test_tensor_only_pickles_still_load(tmp_path, components):
    """A plain torch.save of tensors needs no conversion: diffusers reads it with weights_only=True."""
    state, comps = _ldm_state(tmp_path)
    torch.save({"state_dict": state}, str(tmp_path / "plain.ckpt"))
    loaded = DiffusersBackend.from_single_file(tmp_path / "plain.ckpt", config=tmp_path / "cfg")
    assert_same_weights(loaded.unet, comps[0])
    folder = write_tiny_config_folder(tmp_path / "sd", *components, with_weights=True)
    for f in (folder / "unet").glob("*.safetensors"):
        f.unlink()
    torch.save(dict(components[0].state_dict()), str(folder / "unet" / "diffusion_pytorch_model.bin"))
    assert_same_weights(DiffusersBackend.from_pretrained(folder).unet, components[0])


def test_convert_command_turns_a_trusted_ckpt_into_safetensors(tmp_path, capsys):
    state, comps = _ldm_state(tmp_path)
    src = tmp_path / "trusted.ckpt"
    torch.save({"state_dict": state, "global_step": 7, "hparams": argparse.Namespace(lr=1e-4)}, str(src))
    dst = tmp_path / "trusted.safetensors"
    assert cli(["convert", str(src), str(dst)]) == 2
    assert "--trust-pickle" in capsys.readouterr().err and not dst.exists()
    assert cli(["convert", str(src), str(tmp_path / "x.ckpt"), "--trust-pickle"]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err
    assert cli(["convert", str(src), str(dst), "--trust-pickle"]) == 0
    assert f"wrote {len(state)} tensors" in capsys.readouterr().out
    loaded = DiffusersBackend.from_single_file(dst, config=tmp_path / "cfg")
    assert_same_weights(loaded.unet, comps[0])
    assert cli(["convert", str(src), str(dst), "--trust-pickle"]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.part"))

"""What shapes cannot show (GroupNorm groups and eps): read from the checkpoint's metadata, a .pt config entry or a
<stem>.json beside it; official values only when nothing declares them; contradictions refused."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest
import torch
from fixtures.tiny_seine import (
    TINY_SEINE,
    make_tiny_seine,
    one_torch_thread,  # noqa: F401  (a fixture)
)
from safetensors import safe_open
from safetensors.torch import save_file

from mvg_backend.errors import MVGInputError
from mvg_backend.seine import (
    SEINE_SD14,
    convert_checkpoint,
    load_seine_unet,
    read_seine_checkpoint,
    unet_from_state_dict,
)
from mvg_backend.seine.metadata import Declaration, resolve_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GROUPS_8 = replace(TINY_SEINE, norm_num_groups=8)


@pytest.fixture(scope="module")
def net8():
    """``(state_dict, input, timestep, text, eps)`` of a tiny SEINE with 8 GroupNorm groups."""
    net = make_tiny_seine(5, config=GROUPS_8)
    x, text = torch.randn(1, 9, 4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.randn(1, 77, 32)
    return net.state_dict(), x, 300, text, net(x, 300, text)


def state_of(net8):
    return {k: v.clone() for k, v in net8[0].items()}


def eps_of(net, net8):
    _, x, t, text, _ = net8
    return net(x, t, text)


def test_the_group_count_is_invisible_in_the_shapes(net8):
    """Why metadata is needed: the 8-group weights load into a 32-group network without complaint, and differ."""
    wrong = unet_from_state_dict(state_of(net8))  # shapes only: the official 32 groups
    assert wrong.config.norm_num_groups == 32
    assert (eps_of(wrong, net8) - net8[4]).abs().max() > 1e-2


def test_groups_from_the_safetensors_metadata_written_by_the_converter(tmp_path, net8):
    src = tmp_path / "seine.pt"
    torch.save({"ema": state_of(net8), "config": {"norm_num_groups": 8, "_class_name": "UNet3DConditionModel"},
                "args": argparse.Namespace(num_frames=16)}, str(src))
    resolved = convert_checkpoint(src, tmp_path / "seine.safetensors", trust_pickle=True)
    assert resolved.config.norm_num_groups == 8
    assert resolved.origins["norm_num_groups"] == "the 'config' entry of 'seine.pt'"
    with safe_open(str(tmp_path / "seine.safetensors"), framework="pt") as f:
        metadata = f.metadata()
    written = json.loads(metadata["mvg_seine_config"])
    assert written["norm_num_groups"] == 8 and written["norm_eps"] == 1e-5 and written["attention_head_dim"] == [1, 2]
    assert "norm_num_groups=8: declared in the 'config' entry of 'seine.pt'" in metadata["mvg_seine_config_source"]
    assert ("norm_eps=1e-05, relative_position_max_distance=32: official SEINE values"
            in metadata["mvg_seine_config_source"])

    checkpoint = read_seine_checkpoint(tmp_path / "seine.safetensors")
    assert checkpoint.config == GROUPS_8
    summary = checkpoint.summary
    assert ("GroupNorm 8 groups, eps 1e-05, relative-position max distance 32 declared in the safetensors metadata"
            in summary)
    assert "the converter noted: converted from 'seine.pt'" in summary
    net = load_seine_unet(tmp_path / "seine.safetensors")
    assert net.config.norm_num_groups == 8
    assert torch.allclose(eps_of(net, net8), net8[4], atol=1e-5)


@pytest.mark.parametrize("entry", ["config", "model_config"])
def test_groups_from_a_weights_only_pt_config_entry(tmp_path, net8, entry):
    torch.save({"ema": state_of(net8), entry: {"norm_num_groups": 8, "attention_head_dim": [1, 2], "sample_size": 64}},
               str(tmp_path / "seine.pt"))
    checkpoint = read_seine_checkpoint(tmp_path / "seine.pt")
    assert checkpoint.config == GROUPS_8
    assert f"GroupNorm 8 groups declared in the {entry!r} entry of 'seine.pt'" in checkpoint.summary
    assert "eps 1e-05, relative-position max distance 32: official SEINE values (not declared)" in checkpoint.summary
    assert torch.allclose(eps_of(load_seine_unet(tmp_path / "seine.pt"), net8), net8[4], atol=1e-5)


def test_groups_and_eps_from_a_sidecar_json(tmp_path, net8):
    eps_net = make_tiny_seine(5, config=replace(GROUPS_8, norm_eps=1e-2))
    save_file(state_of(net8), str(tmp_path / "tiny.safetensors"))
    (tmp_path / "tiny.json").write_text(json.dumps({"_class_name": "UNet3DConditionModel", "norm_num_groups": 8,
                                                    "norm_eps": 0.01, "act_fn": "silu", "flip_sin_to_cos": True}))
    checkpoint = read_seine_checkpoint(tmp_path / "tiny.safetensors")
    assert (checkpoint.config.norm_num_groups, checkpoint.config.norm_eps) == (8, 0.01)
    assert "GroupNorm 8 groups, eps 0.01 declared in 'tiny.json' beside it" in checkpoint.summary
    net = load_seine_unet(tmp_path / "tiny.safetensors")
    assert torch.allclose(eps_of(net, net8), eps_of(eps_net, net8), atol=1e-5)
    assert (eps_of(net, net8) - net8[4]).abs().max() > 1e-4  # the declared eps is used, not the default


def test_without_any_declaration_the_official_values_are_used_and_said(tmp_path, net8):
    save_file(state_of(net8), str(tmp_path / "bare.safetensors"))
    checkpoint = read_seine_checkpoint(tmp_path / "bare.safetensors")
    assert checkpoint.config == TINY_SEINE
    assert checkpoint.summary.endswith(
        "GroupNorm 32 groups, eps 1e-05, relative-position max distance 32: official SEINE values (the checkpoint "
        "declares none: no architecture in its safetensors metadata, no bare.json beside it).")
    torch.save(state_of(net8), str(tmp_path / "bare.pt"))
    summary = read_seine_checkpoint(tmp_path / "bare.pt").summary
    assert "no 'config'/'model_config' entry, no bare.json beside it" in summary


def test_metadata_and_sidecar_are_merged_and_must_agree(tmp_path, net8):
    torch.save({"ema": state_of(net8), "config": {"norm_num_groups": 8}}, str(tmp_path / "m.pt"))
    (tmp_path / "m.json").write_text(json.dumps({"norm_eps": 1e-6, "norm_num_groups": 8}))
    checkpoint = read_seine_checkpoint(tmp_path / "m.pt")
    assert (checkpoint.config.norm_num_groups, checkpoint.config.norm_eps) == (8, 1e-6)
    assert "GroupNorm 8 groups declared in the 'config' entry of 'm.pt'" in checkpoint.summary
    assert "eps 1e-06 declared in 'm.json' beside it" in checkpoint.summary
    (tmp_path / "m.json").write_text(json.dumps({"norm_num_groups": 16}))
    with pytest.raises(MVGInputError, match=r"the 'config' entry of 'm.pt' declares norm_num_groups = 8 but "
                                            r"'m.json' beside it declares 16"):
        read_seine_checkpoint(tmp_path / "m.pt")


@pytest.mark.parametrize("declared,message", [
    ({"norm_num_groups": 12}, r"declared in the 'config' entry of 'bad.pt' contradicts the tensor shapes: "
                              r"norm_num_groups 12 does not divide every level's channels \(32, 64\)"),
    ({"norm_num_groups": 0}, "norm_num_groups must be a positive integer"),
    ({"norm_num_groups": "8"}, "declares norm_num_groups = '8'; it must be a whole number"),
    ({"norm_eps": -1}, "norm_eps must be a small positive number"),
    ({"attention_head_dim": [1, 3]}, "declares 3 attention heads at level 1, which does not divide its 64 channels"),
    ({"attention_head_dim": 2}, r"declares attention_head_dim = 2, but the tensor shapes show \[1, 2\]"),
    ({"num_attention_heads": [2, 2], "attention_head_dim": [1, 2]}, "declares num_attention_heads"),
    ({"attention_head_dim": [1, 2, 2]}, "for 3 levels, but the checkpoint's shapes have 2"),
    ({"block_out_channels": [32, 128]}, r"block_out_channels = \[32, 128\], but the tensor shapes show \[32, 64\]"),
    ({"cross_attention_dim": 768}, "cross_attention_dim = 768, but the tensor shapes show 32"),
    ({"down_block_types": ["CrossAttnDownBlock3D"] * 2}, "down_block_types"),
    ({"act_fn": "gelu"}, r"declares act_fn = 'gelu'; this SEINE implementation \(like the official model\) has "
                         r"act_fn = 'silu' only"),
    ({"freq_shift": 1}, "freq_shift = 1"),
    ({"only_cross_attention": [False, True]}, "only_cross_attention"),
])
def test_declarations_that_contradict_the_shapes_or_the_network_are_refused(tmp_path, net8, declared, message):
    torch.save({"ema": state_of(net8), "config": declared}, str(tmp_path / "bad.pt"))
    with pytest.raises(MVGInputError, match=message) as err:
        read_seine_checkpoint(tmp_path / "bad.pt")
    assert type(err.value) is MVGInputError and "'bad.pt'" in str(err.value)


def test_official_values_that_do_not_fit_ask_for_a_declaration(tmp_path):
    """Widths of 48 have no room for 32 groups: without a declaration the loader says what to add."""
    config = replace(TINY_SEINE, block_out_channels=(48, 96), norm_num_groups=16, attention_heads=(1, 3))
    save_file(make_tiny_seine(0, config=config).state_dict(), str(tmp_path / "w48.safetensors"))
    with pytest.raises(MVGInputError, match=r"the official SEINE values do not fit its tensor shapes \(norm_num_groups "
                                            r"32 does not divide .* \(48, 96\)\).*in a <name>.json beside it"):
        read_seine_checkpoint(tmp_path / "w48.safetensors")
    (tmp_path / "w48.json").write_text(json.dumps({"norm_num_groups": 16}))
    assert read_seine_checkpoint(tmp_path / "w48.safetensors").config == config


def test_unreadable_declarations(tmp_path, net8):
    save_file(state_of(net8), str(tmp_path / "x.safetensors"))
    (tmp_path / "x.json").write_text("{norm_num_groups: 8")
    with pytest.raises(MVGInputError, match="'x.json' beside it is not valid JSON"):
        read_seine_checkpoint(tmp_path / "x.safetensors")
    (tmp_path / "x.json").write_text("[8]")
    with pytest.raises(MVGInputError, match="must be a JSON object"):
        read_seine_checkpoint(tmp_path / "x.safetensors")
    torch.save({"ema": state_of(net8), "config": [8]}, str(tmp_path / "y.pt"))
    with pytest.raises(MVGInputError, match="the 'config' entry of 'y.pt' is a list; it must be a dict"):
        read_seine_checkpoint(tmp_path / "y.pt")
    save_file(state_of(net8), str(tmp_path / "z.safetensors"), metadata={"mvg_seine_config": "not json"})
    with pytest.raises(MVGInputError, match="the safetensors metadata of 'z.safetensors' is not valid JSON"):
        read_seine_checkpoint(tmp_path / "z.safetensors")


def test_the_official_diffusers_config_describes_the_official_shapes():
    """The official model's config (SD 1.4's UNet config.json as SEINE rewrites it: 3-D blocks, 9 input channels)
    as a declaration: consistent with the official shapes; a per-level list that repeats one value is fine."""
    from test_seine_model import MANIFEST

    shapes = {k: tuple(v) for k, v in json.loads(MANIFEST.read_text())["params"].items()}
    official = {
        "_class_name": "UNet3DConditionModel", "_diffusers_version": "0.2.2", "act_fn": "silu", "attention_head_dim": 8,
        "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False, "cross_attention_dim": 768,
        "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
        "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 9, "layers_per_block": 2,
        "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
        "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
        "use_first_frame": False, "num_frames": 16,
    }
    official["transformer_layers_per_block"] = [1, 1, 1, 1]
    resolved = resolve_config(shapes, [Declaration("config.json", official)], "seine.pt")
    assert resolved.config == SEINE_SD14
    assert resolved.ignored == ("num_frames",) and "Ignored declared keys: num_frames." in resolved.summary
    with pytest.raises(MVGInputError, match="in_channels = 4, but the tensor shapes show 9"):
        resolve_config(shapes, [Declaration("config.json", {**official, "in_channels": 4})], "seine.pt")
    with pytest.raises(MVGInputError,
                       match=r"transformer_layers_per_block = \[1, 2, 1, 1\], but the tensor shapes show 1"):
        resolve_config(shapes, [Declaration("config.json", {**official, "transformer_layers_per_block": [1, 2, 1, 1]})],
                       "seine.pt")

"""SEINE's 3-D UNet: the official state-dict layout, config inference, shapes, and the temporal attention."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fixtures.tiny_seine import (
    TINY_SEINE,
    make_tiny_seine,
    one_torch_thread,  # noqa: F401  (a fixture)
)

from mvg_backend.errors import MVGInputError
from mvg_backend.seine import (
    SEINE_SD14,
    SEINEConfig,
    UNet3DConditionModel,
    infer_config,
)
from mvg_backend.seine.attention import (
    RotaryEmbedding,
    TemporalAttention,
    relative_position_bucket,
)
from mvg_backend.seine.resnet import ResnetBlock3D

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# every key and shape of the official model (SD 1.4 config), generated from Vchitect/SEINE's code
MANIFEST = Path(__file__).parent / "fixtures" / "seine_unet_state_dict_manifest.json"


def meta_shapes(config: SEINEConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in UNet3DConditionModel(config).state_dict().items()}


def test_sd14_config_matches_the_official_manifest_key_for_key():
    manifest = json.loads(MANIFEST.read_text())
    expected = {k: tuple(v) for k, v in manifest["params"].items()}
    shapes = meta_shapes(SEINE_SD14)
    assert len(shapes) == manifest["num_tensors"] == 830
    assert list(shapes) == list(expected)  # same keys, same order
    assert shapes == expected
    assert sum(math.prod(s) for s in shapes.values()) == manifest["total_numel"]
    assert infer_config(expected) == SEINE_SD14


TINY_CONFIGS = {
    "tiny": TINY_SEINE,
    "three_levels_mixed_heads": SEINEConfig(
        block_out_channels=(64, 64, 128), down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"), layers_per_block=2,
        attention_heads=(2, 1, 4), cross_attention_dim=40),
    "attention_everywhere_depth2": SEINEConfig(
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock3D",) * 2,
        up_block_types=("CrossAttnUpBlock3D",) * 2, layers_per_block=1, transformer_layers=2,
        attention_heads=(1, 2), cross_attention_dim=24),
    "rotary16_buckets8_in5": SEINEConfig(
        in_channels=5, out_channels=2, block_out_channels=(32, 32), down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), layers_per_block=1, attention_heads=(2, 1),
        cross_attention_dim=16, rotary_dim=16, relative_position_buckets=8),
}


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_config_inference_round_trips(name):
    config = TINY_CONFIGS[name]
    shapes = meta_shapes(config)
    assert infer_config(shapes) == config
    assert meta_shapes(infer_config(shapes)) == shapes


@pytest.mark.parametrize("batch,frames,size,timestep", [
    (1, 16, (8, 8), 999), (2, 5, (12, 10), torch.tensor([3, 700])), (2, 3, (7, 9), torch.tensor(250)),
])
def test_forward_returns_epsilon_per_frame(batch, frames, size, timestep):
    net = make_tiny_seine()
    sample = torch.randn(batch, 9, frames, *size)
    eps = net(sample, timestep, torch.randn(batch, 77, 32))
    assert eps.shape == (batch, 4, frames, *size)
    assert torch.isfinite(eps).all()


def test_per_batch_timesteps_equal_separate_calls():
    net = make_tiny_seine()
    x, ctx = torch.randn(2, 9, 4, 8, 8), torch.randn(2, 77, 32)
    both = net(x, torch.tensor([10, 900]), ctx)
    assert torch.allclose(both[:1], net(x[:1], 10, ctx[:1]), atol=1e-5)
    assert torch.allclose(both[1:], net(x[1:], 900, ctx[1:]), atol=1e-5)


def test_bfloat16_forward_is_close_to_float32():
    net = make_tiny_seine()
    x, ctx = torch.randn(1, 9, 4, 8, 8), torch.randn(1, 77, 32)
    ref = net(x, 500, ctx)
    low = make_tiny_seine().to(torch.bfloat16)
    low.get_submodule("down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.rotary_emb").float()
    out = low(x, 500, ctx)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_a_change_in_one_frame_reaches_the_others():
    net = make_tiny_seine()
    x, ctx = torch.randn(1, 9, 4, 8, 8), torch.randn(1, 77, 32)
    base = net(x, 300, ctx)
    x2 = x.clone()
    x2[:, :, 0] += 1.0
    assert not torch.allclose(net(x2, 300, ctx)[:, :, 1:], base[:, :, 1:], atol=1e-4)


def test_resnet_groupnorm_pools_statistics_over_frames():
    block = ResnetBlock3D(32, 32, 16, groups=8, eps=1e-5).eval()
    x, temb = torch.randn(1, 32, 3, 4, 4), torch.randn(1, 16)
    out = block(x, temb)
    x_scaled = x.clone()
    x_scaled[:, :, 2] *= 10  # only frame 2 changes, yet frame 0's normalisation changes too
    assert not torch.allclose(block(x_scaled, temb)[:, :, 0], out[:, :, 0], atol=1e-4)
    folded = torch.nn.functional.group_norm(x.transpose(1, 2).reshape(3, 32, 4, 4), 8, eps=1e-5)
    pooled = torch.nn.functional.group_norm(x, 8, eps=1e-5)
    assert not torch.allclose(folded.reshape(1, 3, 32, 4, 4).transpose(1, 2), pooled, atol=1e-3)


def test_relative_position_buckets_match_t5():
    from transformers.models.t5.modeling_t5 import T5Attention

    rel = torch.arange(-40, 41)[None, :]
    ours = relative_position_bucket(rel, num_buckets=32, max_distance=32)
    t5 = T5Attention._relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=32)
    assert torch.equal(ours, t5)
    # by hand: keys at/before the query use buckets 0..15, keys after it 16..31; exact below 8
    by_hand = {0: 0, -1: 1, -7: 7, 1: 17, 7: 23, -8: 8, -16: 12, -31: 15, -100: 15, 8: 24, 100: 31}
    for offset, bucket in by_hand.items():
        assert relative_position_bucket(torch.tensor(offset), 32, 32).item() == bucket, offset


def test_rotary_rotates_interleaved_pairs_of_the_first_channels():
    rotary = RotaryEmbedding(8)
    x = torch.randn(3, 5, 12)  # [heads, frames, head_dim]
    out = rotary(x)
    assert torch.equal(out[..., 8:], x[..., 8:])
    theta = 10000 ** (-torch.arange(0, 8, 2).float() / 8)
    pairs = torch.view_as_complex(x[..., :8].reshape(3, 5, 4, 2).contiguous())
    expected = torch.view_as_real(pairs * torch.polar(torch.ones(5, 4), torch.arange(5.0)[:, None] * theta))
    assert torch.allclose(out[..., :8], expected.reshape(3, 5, 8), atol=1e-6)
    # scores of rotated queries and keys depend only on the frame offset
    q, k = torch.randn(12).expand(5, 12), torch.randn(12).expand(5, 12)
    scores = rotary(q) @ rotary(k).T
    assert torch.allclose(scores[0, 2], scores[2, 4], atol=1e-5) and torch.allclose(scores[1, 0], scores[4, 3], atol=1e-5)


def test_rotary_angles_stay_float32_in_half_precision():
    rotary = RotaryEmbedding(32)
    x = torch.randn(2, 16, 40)
    assert (rotary(x.half()).float() - rotary(x)).abs().max() < 2e-2
    assert rotary(x.half()).dtype == torch.float16


def test_temporal_attention_equals_its_definition():
    """SDPA with the additive bias = softmax(rot(q)·rot(k)ᵀ/√d + bias[bucket(j−i)])·v, per head."""
    torch.manual_seed(0)
    attn = TemporalAttention(64, heads=2, rotary_dim=32).eval()
    torch.nn.init.normal_(attn.time_rel_pos_bias.relative_attention_bias.weight)
    x = torch.randn(6, 10, 64)
    q, k, v = (attn.split_heads(p(x)) for p in (attn.to_q, attn.to_k, attn.to_v))
    q, k = attn.rotary_emb(q), attn.rotary_emb(k)
    pos = torch.arange(10)
    bias = attn.time_rel_pos_bias.relative_attention_bias.weight[relative_position_bucket(pos[None] - pos[:, None])]
    logits = q @ k.transpose(-1, -2) / math.sqrt(32) + bias.permute(2, 0, 1)
    expected = attn.to_out[0](attn.merge_heads(logits.softmax(-1) @ v))
    assert torch.allclose(attn(x), expected, atol=1e-5)


def test_config_checks_head_sizes():
    with pytest.raises(ValueError, match="rotary size 32"):
        replace(TINY_SEINE, attention_heads=(2, 2))
    shapes = meta_shapes(TINY_SEINE)
    shapes["conv_in.weight"] = (32, 4, 3, 3)
    with pytest.raises(MVGInputError, match="conv_in takes 4 channels.*needs 9"):
        infer_config(shapes)

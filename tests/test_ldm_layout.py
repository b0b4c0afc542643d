"""The LDM single-file writer (tests/fixtures/ldm_layout.py) round-trips through diffusers' own reader.

Tiny random diffusers models -> original-layout .safetensors -> ``from_single_file`` (offline, with a
local config folder) -> every tensor equal to the original. CPU, a few seconds (most of it is importing
diffusers).
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from fixtures.ldm_layout import (  # noqa: E402
    CLIP_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    clip_text_to_ldm,
    save_ldm_checkpoint,
    to_ldm_state_dict,
    unet_to_ldm,
    vae_to_ldm,
)
from fixtures.tiny_checkpoints import (  # noqa: E402
    make_tiny_sd_components,
    make_tiny_tokenizer,
    write_tiny_config_folder,
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # any hub lookup must fail at once instead of hanging on the network
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_sd_components(seed=0)


def _assert_same_tensors(original: torch.nn.Module, loaded: torch.nn.Module, what: str):
    a, b = original.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys(), f"{what}: key sets differ: {sorted(a.keys() ^ b.keys())[:10]}"
    bad = [k for k in a if a[k].shape != b[k].shape or a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
    assert not bad, f"{what}: {len(bad)} tensors differ after the round trip, e.g. {bad[:5]}"


def test_pipeline_from_single_file_round_trip(tiny, tmp_path):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    unet, vae, text_encoder, tokenizer, scheduler = tiny
    cfg = write_tiny_config_folder(tmp_path / "cfg", unet, vae, text_encoder, tokenizer, scheduler)
    for rel in ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                "scheduler/scheduler_config.json"):
        assert (cfg / rel).is_file(), rel
    assert not list(cfg.rglob("*.safetensors")), "a config folder must not carry weights"
    assert json.loads((cfg / "scheduler/scheduler_config.json").read_text())["_class_name"] == "DDIMScheduler"

    ckpt = save_ldm_checkpoint(tmp_path / "tiny.safetensors", unet, vae, text_encoder)
    pipe = StableDiffusionPipeline.from_single_file(
        str(ckpt), config=str(cfg), local_files_only=True, safety_checker=None, requires_safety_checker=False)

    _assert_same_tensors(unet, pipe.unet, "unet")
    _assert_same_tensors(vae, pipe.vae, "vae")
    _assert_same_tensors(text_encoder, pipe.text_encoder, "text_encoder")
    assert isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.tokenizer("a lung").input_ids == tokenizer("a lung").input_ids

    # and the loaded pipeline runs: 64 px, 2 steps, finite
    out = pipe("a lung", num_inference_steps=2, height=64, width=64, output_type="np",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, 64, 64, 3)
    assert torch.isfinite(torch.from_numpy(out)).all()


def test_checkpoint_key_layout(tiny, tmp_path):
    from safetensors import safe_open

    unet, vae, text_encoder, _, _ = tiny
    ckpt = save_ldm_checkpoint(tmp_path / "tiny.safetensors", unet, vae, text_encoder, dtype=torch.float16)
    with safe_open(str(ckpt), framework="pt") as f:
        keys = set(f.keys())
        dtypes = {f.get_slice(k).get_dtype() for k in keys}
    n = len(unet.state_dict()) + len(vae.state_dict()) + len(text_encoder.state_dict())
    assert len(keys) == n
    assert dtypes == {"F16"}
    # anchors of the original layout that readers (ComfyUI, diffusers) key on
    for k in ("input_blocks.0.0.weight", "input_blocks.1.1.proj_in.weight", "input_blocks.2.0.op.weight",
              "middle_block.1.transformer_blocks.0.attn2.to_k.weight", "middle_block.2.out_layers.3.weight",
              "output_blocks.2.0.skip_connection.weight", "output_blocks.1.1.conv.weight",
              "output_blocks.3.1.proj_out.weight", "time_embed.2.weight", "out.2.weight"):
        assert UNET_PREFIX + k in keys, k
    for k in ("encoder.down.0.block.0.conv1.weight", "encoder.down.0.downsample.conv.weight",
              "encoder.mid.attn_1.q.weight", "decoder.up.3.block.1.norm2.weight",
              "decoder.up.1.upsample.conv.weight", "decoder.norm_out.weight", "quant_conv.weight"):
        assert VAE_PREFIX + k in keys, k
    for k in ("embeddings.token_embedding.weight", "encoder.layers.1.mlp.fc2.bias", "final_layer_norm.weight"):
        assert CLIP_PREFIX + k in keys, k
    leftovers = [k for k in keys if any(s in k for s in (".resnets.", "down_blocks", "up_blocks", "mid_block",
                                                         "time_embedding", "conv_norm_out", "group_norm"))]
    assert not leftovers, f"diffusers names leaked into the LDM file: {leftovers[:5]}"
    # the VAE mid attention is stored as 1x1 convolutions
    q = vae_to_ldm(vae)[VAE_PREFIX + "decoder.mid.attn_1.q.weight"]
    assert q.shape == (32, 32, 1, 1)


def test_deeper_configs_round_trip(tmp_path):
    """More levels, 2 layers per block, depth-2 transformers, a mid block: read back by diffusers."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(1)
    unet = UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 32, 64), layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, transformer_layers_per_block=2,
        use_linear_projection=False).eval()
    vae = AutoencoderKL(block_out_channels=(8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=2,
                        norm_num_groups=8, latent_channels=4).eval()
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = make_tiny_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=20, num_hidden_layers=3,
        num_attention_heads=2, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)).eval()
    from diffusers import DDIMScheduler

    cfg = write_tiny_config_folder(tmp_path / "cfg", unet, vae, text_encoder, tokenizer, DDIMScheduler())
    ckpt = save_ldm_checkpoint(tmp_path / "deep.safetensors", unet, vae, text_encoder)

    # 3 levels x (2 resnets + downsampler except last) + conv_in = 9 input blocks; 9 output blocks
    sd = unet_to_ldm(unet)
    assert max(int(k.split(".")[3]) for k in sd if ".input_blocks." in k) == 8
    assert max(int(k.split(".")[3]) for k in sd if ".output_blocks." in k) == 8
    assert UNET_PREFIX + "output_blocks.2.2.conv.weight" in sd  # attention level: upsampler in slot 2
    assert UNET_PREFIX + "output_blocks.5.1.conv.weight" in sd  # plain level: upsampler in slot 1
    assert UNET_PREFIX + "input_blocks.7.1.transformer_blocks.1.attn1.to_q.weight" in sd

    loaded_unet = UNet2DConditionModel.from_single_file(str(ckpt), config=str(cfg), subfolder="unet",
                                                        local_files_only=True)
    loaded_vae = AutoencoderKL.from_single_file(str(ckpt), config=str(cfg), subfolder="vae", local_files_only=True)
    _assert_same_tensors(unet, loaded_unet, "unet")
    _assert_same_tensors(vae, loaded_vae, "vae")


def test_clip_prefix_old_and_new_transformers(tiny):
    _, _, text_encoder, _, _ = tiny
    sd = text_encoder.state_dict()
    flat = {k.removeprefix("text_model."): v for k, v in sd.items()}  # transformers >= 5.6
    wrapped = {"text_model." + k: v for k, v in flat.items()}  # transformers < 5.6
    wrapped["text_model.embeddings.position_ids"] = torch.arange(77)[None]  # persistent in old versions
    a, b = clip_text_to_ldm(flat), clip_text_to_ldm(wrapped)
    assert a.keys() == b.keys()
    assert all(k.startswith(CLIP_PREFIX) and "text_model.text_model" not in k for k in a)
    assert CLIP_PREFIX + "embeddings.position_embedding.weight" in a
    assert not any(k.endswith("position_ids") for k in b)


def test_unknown_keys_are_errors(tiny):
    unet, vae, text_encoder, _, _ = tiny
    usd = dict(unet.state_dict())
    usd["down_blocks.0.mystery.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="mystery"):
        unet_to_ldm(usd, unet.config)
    vsd = dict(vae.state_dict())
    vsd["encoder.mid_block.attentions.0.surprise.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="surprise"):
        vae_to_ldm(vsd)
    with pytest.raises(KeyError, match="visual"):
        clip_text_to_ldm({"visual_projection.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="layers_per_block"):
        unet_to_ldm(dict(unet.state_dict()))  # a bare state dict needs the config
    # the three parts never collide
    assert len(to_ldm_state_dict(unet, vae, text_encoder)) == (
        len(unet.state_dict()) + len(vae.state_dict()) + len(text_encoder.state_dict()))


def test_tiny_components_are_deterministic_and_restore_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = make_tiny_sd_components(seed=3)
    after = torch.rand(1)
    assert torch.equal(before, after), "make_tiny_sd_components must not consume the global RNG"
    b = make_tiny_sd_components(seed=3)
    c = make_tiny_sd_components(seed=4)
    for m_a, m_b in zip(a[:3], b[:3], strict=True):
        sa, sb = m_a.state_dict(), m_b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(a[0].conv_in.weight, c[0].conv_in.weight)
    ids = a[3]("a lung lesion").input_ids
    assert ids[0] == a[3].bos_token_id and ids[-1] == a[3].eos_token_id and max(ids) < 1000

"""Transitions between keyframes: SEINE end to end on tiny models, chaining, fallbacks, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures.tiny_seine import (
    make_tiny_seine,
    one_torch_thread,  # noqa: F401  (a fixture)
)

from mvg_backend.errors import MVGInputError
from mvg_backend.seine import (
    DiffusersSEINEBackend,
    crossfade,
    onelast_conditioning,
    optical_flow_morph,
    transition_frames,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 64


def keyframes(k=2, size=(SIZE, SIZE), seed=0) -> np.ndarray:
    """``k`` smooth test images: a bright disc that grows and moves right from one keyframe to the next."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(k):
        cx, r = w * (0.3 + 0.4 * i / max(1, k - 1)), min(h, w) * (0.15 + 0.05 * i)
        disc = np.clip((r - np.hypot(xx - cx, yy - h / 2)) / 3, 0, 1)
        out.append(np.stack([0.2 + 0.6 * disc, 0.25 + 0.5 * disc, 0.3 + 0.4 * (xx / w)], axis=-1))
    return np.stack(out).astype(np.float32)


@pytest.fixture()
def backend(tiny_components):
    _unet, vae, text_encoder, tokenizer, _scheduler = tiny_components
    return DiffusersSEINEBackend(make_tiny_seine(cross_attention_dim=32), vae, text_encoder, tokenizer)


def test_seine_transition_end_to_end_is_seeded(backend):
    kf = keyframes()
    steps = []
    run = lambda seed: transition_frames(kf, backend=backend, frames=5, steps=3, sampler="ddpm", seed=seed,
                                         resolution="native", progress=lambda d, t: steps.append((d, t)))
    a = run(11)
    assert a.frames.shape == (5, SIZE, SIZE, 3) and a.frames.dtype == np.float32
    assert np.array_equal(a.frames[0], kf[0]) and np.array_equal(a.frames[-1], kf[1])
    assert np.isfinite(a.frames).all() and a.frames.min() >= 0 and a.frames.max() <= 1
    assert not np.allclose(a.frames[1], a.frames[2])
    assert steps[-1] == (4, 4) and steps[0] == (1, 4)  # 3 model steps + 1 VAE chunk (3 in-between frames, 4 per chunk)
    assert np.array_equal(run(11).frames, a.frames)
    assert not np.allclose(run(12).frames[1:-1], a.frames[1:-1])
    assert [r.method for r in a.records] == ["keyframe", "seine", "seine", "seine", "keyframe"]
    assert all(r.seed == 11 for r in a.records[1:-1])
    summary = a.summary
    assert "by seine (ddpm, 3 steps, cfg 8.0, prompt 'smooth transitionsmooth transition.', seed 11)" in summary
    assert f"image {SIZE}x{SIZE}; SEINE worked at {SIZE}x{SIZE} (resolution native)" in summary
    assert "frame 0: keyframe 1" in summary and "frame 4: keyframe 2" in summary
    assert "frame 2: interpolated (seine, seed 11), keyframe 1 -> 2, 2/3" in summary
    assert "trained on 16-frame clips" in summary


def test_seine_conditioning_reaches_the_unet(backend):
    calls = []
    unet = backend.unet
    original = unet.forward
    unet.forward = lambda s, t, c: calls.append((s.clone(), c.clone())) or original(s, t, c)
    try:
        transition_frames(keyframes(), backend=backend, frames=4, steps=2, cfg=3.0, sampler="ddim",
                          prompt="a lesion grows", resolution="native")
    finally:
        del unet.forward
    sample_in, text = calls[0]
    assert sample_in.shape == (2, 9, 4, 8, 8)
    mask = sample_in[:, 4]
    assert torch.equal(mask[:, 0], torch.zeros_like(mask[:, 0])) and torch.equal(mask[:, -1], torch.zeros_like(mask[:, 0]))
    assert torch.equal(mask[:, 1:-1], torch.ones_like(mask[:, 1:-1]))
    video = sample_in[0, 5:]
    assert torch.equal(video[:, 1], video[:, 2]) and not torch.allclose(video[:, 0], video[:, 1])  # grey in the middle
    grey = backend.encode_frames(torch.full((1, SIZE, SIZE, 3), 0.5))[0]
    assert torch.allclose(video[:, 1], grey, atol=1e-5)
    assert torch.allclose(text[0], backend.encode_text("a lesion grows")[0]) and torch.allclose(text[1], backend.encode_text("")[0])


def test_onelast_conditioning_layout():
    first, last, grey = torch.full((4, 2, 3), 1.0), torch.full((4, 2, 3), 2.0), torch.zeros(4, 2, 3)
    mask, video = onelast_conditioning(first, last, grey, frames=16)
    assert mask.shape == (1, 1, 16, 2, 3) and video.shape == (1, 4, 16, 2, 3)
    assert mask[0, 0, :, 0, 0].tolist() == [0] + [1] * 14 + [0]
    assert video[0, 0, :, 0, 0].tolist() == [1] + [0] * 14 + [2]
    pixel_mask = torch.ones(1, 16, 64, 48)
    pixel_mask[:, [0, -1]] = 0
    nearest = torch.nn.functional.interpolate(pixel_mask, size=(2, 3), mode="nearest")
    assert torch.equal(mask[:, 0], nearest)


@pytest.mark.parametrize("k,frames", [(2, 3), (3, 5), (4, 16)])
def test_chaining_frame_counts_without_duplicate_keyframes(k, frames):
    kf = keyframes(k, size=(32, 40))
    res = transition_frames(kf, method="crossfade", frames=frames)
    assert len(res.frames) == (k - 1) * (frames - 1) + 1 == len(res.records)
    positions = [r.index for r in res.records if r.keyframe is not None]
    assert positions == [j * (frames - 1) for j in range(k)]
    for j, p in enumerate(positions):
        assert np.array_equal(res.frames[p], kf[j])
    assert [r.transition for r in res.records if r.keyframe is None] == [j for j in range(1, k) for _ in range(frames - 2)]


def test_seine_chains_with_one_seed_per_transition(backend):
    res = transition_frames(keyframes(3), backend=backend, frames=3, steps=2, sampler="ddim", seed=5,
                            resolution="native")
    assert len(res.frames) == 5
    assert [r.seed for r in res.records] == [None, 5, None, 6, None]
    for r, kf in zip([res.records[0], res.records[2], res.records[4]], keyframes(3)):
        assert np.array_equal(res.frames[r.index], kf)


@pytest.mark.parametrize("method", ["optical_flow", "crossfade"])
def test_fallback_endpoints_are_the_keyframes_exactly(method):
    a, b = keyframes()
    fn = optical_flow_morph if method == "optical_flow" else crossfade
    out = fn(a, b, 7)
    assert out.shape == (7, SIZE, SIZE, 3) and out.dtype == np.float32
    assert np.array_equal(out[0], a) and np.array_equal(out[-1], b)
    assert out.min() >= 0 and out.max() <= 1


def test_optical_flow_moves_the_structure_instead_of_fading_it():
    yy, xx = np.mgrid[0:64, 0:96].astype(np.float32)

    def blob(cx):
        disc = np.clip((10 - np.hypot(xx - cx, yy - 32)) / 2, 0, 1)
        return np.repeat((0.1 + 0.8 * disc)[..., None], 3, axis=-1).astype(np.float32)

    mid = optical_flow_morph(blob(30), blob(40), 3)[1][..., 0]
    weights = mid - mid.min()
    centroid = (weights * xx).sum() / weights.sum()
    assert abs(centroid - 35) < 1, centroid
    assert (mid > 0.85).sum() > 0.8 * (blob(35)[..., 0] > 0.85).sum()  # one moved disc at full brightness
    faded = crossfade(blob(30), blob(40), 3)[1][..., 0]
    assert (faded > 0.85).sum() < 0.6 * (blob(35)[..., 0] > 0.85).sum()  # the fade dims the edges instead


def test_without_a_model_seine_falls_back_to_optical_flow_and_says_so():
    res = transition_frames(keyframes(), method="seine", frames=4)
    assert res.settings["method"] == "optical_flow"
    assert "no SEINE model connected" in res.summary
    assert [r.method for r in res.records] == ["keyframe", "optical_flow", "optical_flow", "keyframe"]
    assert "interpolated (optical_flow), keyframe 1 -> 2, 1/2" in res.summary


def test_fallback_method_with_a_model_says_the_model_is_unused(backend):
    res = transition_frames(keyframes(), method="crossfade", backend=backend, frames=3)
    assert "the connected SEINE model is not used" in res.summary


# ---------------------------------------------------------------------------------------------- bad input
def test_fewer_than_two_keyframes():
    for bad in (keyframes(1), keyframes(1)[0], [keyframes(1)[0]]):
        with pytest.raises(MVGInputError, match="got 1 image; a transition needs at least 2"):
            transition_frames(bad, method="crossfade")


def test_keyframes_of_different_sizes_are_resized_to_the_first():
    a = keyframes(1, size=(48, 64))[0]
    b = keyframes(1, size=(96, 128))[0]
    res = transition_frames([a, b], method="crossfade", frames=3)
    assert res.frames.shape == (3, 48, 64, 3)
    assert np.array_equal(res.frames[0], a)
    assert "keyframe 2 is 128x96: resized to the first keyframe's 64x48" in res.summary


def test_sizes_not_multiple_of_8_are_padded_and_cropped_back(backend):
    kf = keyframes(2, size=(61, 70))
    res = transition_frames(kf, backend=backend, frames=3, steps=1, sampler="ddim", resolution="native")
    assert res.frames.shape == (3, 61, 70, 3)
    assert np.array_equal(res.frames[0], kf[0]) and np.array_equal(res.frames[-1], kf[1])
    assert "keyframes are 70x61, not multiples of 8: edge-padded to 72x64" in res.summary


@pytest.mark.parametrize("kwargs,message", [
    (dict(frames=2), "frames=2: use 3..64 frames per transition"),
    (dict(frames=100_000), "frames=100000: use 3..64"),
    (dict(frames=0), "frames=0"),
    (dict(cfg=-1.0), "cfg=-1.0"),
    (dict(sampler="euler"), "sampler='euler'"),
    (dict(steps=0), "steps=0"),
    (dict(method="morph"), "method='morph'"),
    (dict(seed=-3), "seed=-3"),
    (dict(resolution="1024"), "resolution='1024'"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(MVGInputError, match=message):
        transition_frames(keyframes(), **kwargs)


def test_wrong_text_encoder_or_vae_for_seine(tiny_components):
    _unet, vae, text_encoder, tokenizer, _ = tiny_components
    wrong_text = DiffusersSEINEBackend(make_tiny_seine(cross_attention_dim=768), vae, text_encoder, tokenizer)
    with pytest.raises(MVGInputError, match="32-dim features but SEINE needs 768.*CLIP ViT-L/14"):
        transition_frames(keyframes(), backend=wrong_text, frames=3, steps=1, resolution="native")

    class EightChannelVAE(DiffusersSEINEBackend):
        def encode_frames(self, frames):
            return super().encode_frames(frames).repeat(1, 2, 1, 1)

    wrong_vae = EightChannelVAE(make_tiny_seine(), vae, text_encoder, tokenizer)
    with pytest.raises(MVGInputError, match="8-channel latents but SEINE needs 4"):
        transition_frames(keyframes(), backend=wrong_vae, frames=3, steps=1, resolution="native")


def test_progress_can_cancel_a_seine_run(backend):
    class Cancelled(Exception):
        pass

    def progress(done, total):
        if done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        transition_frames(keyframes(3), backend=backend, frames=4, steps=5, resolution="native", progress=progress)


# ---------------------------------------------------------------------------------------------- headless CLI
def test_cli_transition_with_seine_and_an_sd_folder(tmp_path, tiny_components, capsys):
    import cv2
    from fixtures.tiny_seine import write_tiny_seine_checkpoint

    from mvg_backend.seine.cli import main

    _unet, vae, text_encoder, tokenizer, _ = tiny_components
    sd = tmp_path / "sd14"
    vae.save_pretrained(sd / "vae")
    text_encoder.save_pretrained(sd / "text_encoder")
    tokenizer.save_pretrained(sd / "tokenizer")
    seine = write_tiny_seine_checkpoint(tmp_path / "seine.safetensors")
    paths = []
    for i, image in enumerate(keyframes(3)):
        paths.append(tmp_path / f"kf{i}.png")
        cv2.imwrite(str(paths[-1]), (image[..., ::-1] * 255).round().astype(np.uint8))
    out = tmp_path / "run"
    code = main(["transition", "--keyframes", *map(str, paths), "--seine", str(seine), "--sd", str(sd),
                 "--frames", "3", "--steps", "2", "--sampler", "ddim", "--seed", "4", "--resolution", "native",
                 "--out", str(out)])
    assert code == 0
    frames = sorted((out / "frames").glob("*.png"))
    assert len(frames) == 5
    assert np.array_equal(cv2.imread(str(frames[2])), cv2.imread(str(paths[1])))
    summary = (out / "summary.txt").read_text()
    assert "by seine (ddim, 2 steps" in summary and "seed 5" in summary
    assert "prompt 'smooth transitionsmooth transition.'" in summary and "(resolution native)" in summary
    # the loader's summary: architecture from the shapes, GroupNorm groups from the official values (none declared)
    assert "note: SEINE UNet 'seine.safetensors': widths (32, 64)" in summary
    assert "GroupNorm 32 groups, eps 1e-05, relative-position max distance 32: official SEINE values" in summary
    assert "wrote 5 frames" in capsys.readouterr().out

    assert main(["transition", "--keyframes", *map(str, paths[:2]), "--seine", str(seine),
                 "--out", str(tmp_path / "x")]) == 2
    assert "--seine needs --sd" in capsys.readouterr().err
    assert main(["transition", "--keyframes", str(paths[0]), "--method", "crossfade", "--out", str(tmp_path / "y")]) == 2
    assert "needs at least 2" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- working size
class PoolingBackend:
    """A stand-in backend that records what SEINE's parts receive. VAE: 8x8 average pooling (latent channels
    R, G, B, mean) and nearest-neighbour decoding of R, G, B; UNet: predicts zero noise; text: zeros."""

    class ZeroUNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            from fixtures.tiny_seine import TINY_SEINE

            self.config = TINY_SEINE
            self.conv_in = torch.nn.Conv2d(1, 1, 1)
            self.inputs = []

        def forward(self, sample, timestep, encoder_hidden_states):
            self.inputs.append(tuple(sample.shape))
            return torch.zeros_like(sample[:, :4])

    def __init__(self):
        self.notes, self.encoded, self.decoded, self.texts = [], [], [], []
        self.unet = self.ZeroUNet()

    def encode_frames(self, frames):
        self.encoded.append(frames.clone())
        pooled = torch.nn.functional.avg_pool2d(frames.permute(0, 3, 1, 2), 8)
        return torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1)

    def decode_latents(self, latents):
        pixels = torch.nn.functional.interpolate(latents[:, :3].clamp(0, 1), scale_factor=8, mode="nearest")
        self.decoded.append(pixels.permute(0, 2, 3, 1).clone())
        return self.decoded[-1]

    def encode_text(self, text):
        self.texts.append(text)
        return torch.zeros(1, 77, 32)

    def prepare_unet(self):
        return self.unet


def test_the_default_prompt_is_the_official_effective_prompt():
    """The official script runs with text_prompt[0] + additional_prompt = 'smooth transition' + 'smooth transition.'."""
    from mvg_backend.seine import DEFAULT_PROMPT

    assert DEFAULT_PROMPT == "smooth transitionsmooth transition."
    backend = PoolingBackend()
    transition_frames(keyframes(), backend=backend, frames=3, steps=1, sampler="ddim", resolution="native")
    assert backend.texts == ["smooth transitionsmooth transition.", ""]  # cond, then the empty uncond


def test_official_resolution_works_at_512_and_returns_the_keyframes_size():
    kf = keyframes(3, size=(60, 100))
    backend = PoolingBackend()
    res = transition_frames(kf, backend=backend, frames=4, steps=2, sampler="ddim")  # the default resolution
    # the VAE sees both keyframes (and the grey frame) stretched to 512x512 as the official script does:
    # bilinear, corners not aligned, no antialiasing
    pixels = torch.cat(backend.encoded)
    assert pixels.shape == (4, 512, 512, 3)
    official = torch.nn.functional.interpolate(torch.from_numpy(kf).permute(0, 3, 1, 2), size=(512, 512),
                                               mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    assert torch.allclose(pixels[:3], official, atol=1e-6)
    assert torch.equal(pixels[3], torch.full((512, 512, 3), 0.5))
    assert set(backend.unet.inputs) == {(2, 9, 4, 64, 64)}  # 512 px -> 64x64 latents
    # the frames come back at the keyframes' size; keyframe positions hold the keyframes exactly
    assert res.frames.shape == (7, 60, 100, 3)
    for position, j in ((0, 0), (3, 1), (6, 2)):
        assert np.array_equal(res.frames[position], kf[j])
    decoded = torch.cat(backend.decoded).numpy()
    assert decoded.shape == (4, 512, 512, 3)
    import cv2

    back = [cv2.resize(d, (100, 60), interpolation=cv2.INTER_AREA) for d in decoded]
    assert np.allclose(res.frames[[1, 2, 4, 5]], np.clip(back, 0, 1), atol=1e-6)
    assert "SEINE works at the official 512x512 (both keyframes stretched to it" in res.summary
    assert "resized back to 100x60" in res.summary
    assert "image 100x60; SEINE worked at 512x512 (resolution 512 (official))" in res.summary


def test_native_resolution_works_at_the_keyframes_size():
    kf = keyframes(2, size=(60, 100))
    backend = PoolingBackend()
    res = transition_frames(kf, backend=backend, frames=4, steps=2, sampler="ddim", resolution="native")
    pixels = torch.cat(backend.encoded)
    assert pixels.shape == (3, 64, 104, 3)  # edge-padded to multiples of 8
    assert torch.equal(pixels[:2, :60, :100], torch.from_numpy(kf))
    assert set(backend.unet.inputs) == {(2, 9, 4, 8, 13)}
    assert res.frames.shape == (4, 60, 100, 3)
    decoded = torch.cat(backend.decoded).numpy()
    assert np.array_equal(res.frames[1:3], decoded[:, :60, :100])  # cropped, not resized
    assert "image 100x60; SEINE worked at 104x64 (resolution native)" in res.summary
    assert "512" not in res.summary


def test_keyframes_already_512_are_not_resized():
    kf = keyframes(2, size=(512, 512))
    backend = PoolingBackend()
    res = transition_frames(kf, backend=backend, frames=3, steps=1, sampler="ddim")
    assert torch.equal(torch.cat(backend.encoded)[:2], torch.from_numpy(kf))
    assert np.array_equal(res.frames[1], torch.cat(backend.decoded).numpy()[0])
    assert "stretched" not in res.summary


def test_fallbacks_ignore_the_working_size():
    kf = keyframes(2, size=(60, 100))
    official = transition_frames(kf, method="crossfade", frames=4)
    native = transition_frames(kf, method="crossfade", frames=4, resolution="native")
    assert np.array_equal(official.frames, native.frames) and official.frames.shape == (4, 60, 100, 3)


def test_a_mask_keeps_everything_outside_it_still():
    """With the ROI as mask, the in-between frames outside it are the keyframes' cross-dissolve: where the
    keyframes agree (PIE keeps them equal to the original there) nothing moves, whatever the method."""
    from mvg_backend.seine import transition_frames

    rng = np.random.default_rng(0)
    base = rng.random((32, 40, 3), dtype=np.float32)
    mask = np.zeros((32, 40), np.float32)
    mask[8:24, 10:30] = 1.0
    later = base.copy()
    later[8:24, 10:30] = 1.0 - base[8:24, 10:30]  # the disease changes the region only
    free = transition_frames(np.stack([base, later]), method="optical_flow", frames=6)
    kept = transition_frames(np.stack([base, later]), method="optical_flow", frames=6, mask=mask)
    outside = mask == 0
    assert np.abs(free.frames[:, outside] - base[outside]).max() > 0.05  # the flow morph warps the whole frame
    np.testing.assert_allclose(kept.frames[:, outside], np.broadcast_to(base[outside], kept.frames[:, outside].shape),
                               rtol=0, atol=1e-6)  # float rounding of (1-t)·a + t·a only
    assert np.array_equal(kept.frames[:, mask == 1], free.frames[:, mask == 1])  # inside: the method's frames
    assert any("cross-dissolve" in n for n in kept.notes)


def test_a_prompt_longer_than_one_clip_context_is_cut_to_whole_words_with_a_note(backend):
    """As PIE does (fit_prompt): SEINE's text encoder reads 75 tokens; the summary names what was dropped."""
    texts = []
    encode = backend.encode_text
    backend.encode_text = lambda text: texts.append(text) or encode(text)
    prompt = " ".join(["the lesion grows slowly"] * 30)
    result = transition_frames(keyframes(), backend=backend, frames=3, steps=1, prompt=prompt, resolution="native")
    assert backend.count_tokens(prompt) > 75
    kept = texts[0]
    assert prompt.startswith(kept) and backend.count_tokens(kept) <= 75
    assert backend.count_tokens(kept + " " + prompt[len(kept):].split()[0]) > 75
    note = next(n for n in result.notes if "CLIP tokens" in n)
    assert note.startswith(f"the prompt has {backend.count_tokens(prompt)} CLIP tokens, more than the 75 that fit")
    assert f"dropping '{prompt[len(kept):].strip()}'" in note and note in result.summary
    short = transition_frames(keyframes(), backend=backend, frames=3, steps=1, prompt="a lesion grows",
                              resolution="native")
    assert not any("CLIP tokens" in n for n in short.notes)

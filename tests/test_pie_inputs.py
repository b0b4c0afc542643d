"""Bad and unusual inputs to progressive_edit: clear errors or documented handling, never a torch crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures.backends import FakeBackend
from mvg_backend.errors import MVGInputError
from mvg_backend.pie import progressive_edit
from mvg_backend.prompts import PromptPlan, Stage


def run(image, mask, backend=None, **kw):
    kw.setdefault("rounds", 2)
    kw.setdefault("steps", 10)
    return progressive_edit(backend or FakeBackend(), image, mask, kw.pop("prompts", "a chest x-ray"), **kw)


def test_mask_of_other_size_is_resized_and_reported(phantom):
    image, _ = phantom
    small = np.zeros((32, 32), np.float32)
    small[8:24, 4:16] = 1
    res = run(image, small)
    assert "mask 32x32 resized to the image size 64x64" in res.summary
    assert res.frames.shape == (3, 64, 64, 3)


def test_empty_mask_is_an_error(phantom):
    image, mask = phantom
    with pytest.raises(MVGInputError, match="mask is empty.*nothing to edit.*MVG_ROIMask"):
        run(image, np.zeros_like(mask))


def test_full_mask_runs_with_a_warning(phantom):
    image, mask = phantom
    res = run(image, np.ones_like(mask))
    assert "mask covers the whole image" in res.summary


def test_missing_mask_edits_everything(phantom):
    image, _ = phantom
    res = run(image, None)
    assert "no mask given: the whole image is editable" in res.summary


@pytest.mark.parametrize("shape", [(60, 70), (57, 64), (64, 65)])
def test_sizes_not_multiple_of_8_are_padded_and_cropped_back(shape):
    h, w = shape
    rng = np.random.default_rng(0)
    image = rng.random((h, w, 3), dtype=np.float32)
    mask = np.zeros((h, w), np.float32)
    mask[10:40, 10:40] = 1
    fake = FakeBackend()
    res = run(image, mask, backend=fake)
    assert res.frames.shape[1:] == (h, w, 3)
    assert fake.calls[0]["original"].shape[-2:] == (-(-h // 8), -(-w // 8))
    assert "padded by" in res.summary
    outside = mask == 0
    assert np.array_equal(res.frames[:, outside], np.broadcast_to(image[outside], res.frames[:, outside].shape))


def test_grayscale_rgba_and_batch_of_one(phantom):
    image, mask = phantom
    gray = image[..., 0]
    for variant, note in [(gray, "grayscale expanded"), (gray[..., None], "grayscale expanded"),
                          (np.concatenate([image, np.ones_like(image[..., :1])], -1), "alpha channel dropped"),
                          (torch.from_numpy(image)[None], None), ((image * 255).astype(np.uint8), None)]:
        res = run(variant, mask)
        assert res.frames.shape == (3, 64, 64, 3)
        if note:
            assert note in res.summary
    res = run(gray, mask)
    np.testing.assert_array_equal(res.frames[0], np.repeat(gray[..., None], 3, -1))


def test_uint16_image_scaled():
    image = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    res = run(image, np.ones((64, 64), np.float32))
    assert res.frames[0].max() == pytest.approx(1.0) and res.frames[0].min() == 0.0


def test_batched_image_is_an_error(phantom):
    image, mask = phantom
    with pytest.raises(MVGInputError, match="batch of 2 images.*one image"):
        run(np.stack([image, image]), mask)


def test_batched_mask_is_an_error(phantom):
    image, mask = phantom
    with pytest.raises(MVGInputError, match=r"mask: expected \[H,W\].*one mask per image"):
        run(image, np.stack([mask, mask]))


@pytest.mark.parametrize("bad,match", [
    (np.full((64, 64, 3), np.nan, np.float32), "NaN or infinite"),
    (np.full((64, 64, 3), 255.0, np.float32), "must lie in 0..1.*Divide 8-bit data by 255"),
    (np.zeros((4, 64, 3), np.float32), "at least 8x8"),
    (np.zeros((64, 64, 5), np.float32), "expected"),
    ("not an image", "expected an array"),
])
def test_unusable_images(phantom, bad, match):
    _, mask = phantom
    with pytest.raises(MVGInputError, match=match):
        run(bad, mask)


@pytest.mark.parametrize("kw,match", [
    (dict(rounds=0), "rounds=0"),
    (dict(strength=0.0), r"strength=0.0.*0.01..1"),
    (dict(strength=1.5), "strength=1.5"),
    (dict(beta1=-0.1), r"beta1=-0.1.*\[0, 1\]"),
    (dict(beta2=1.1), "beta2=1.1"),
    (dict(steps=0), "steps=0"),
    (dict(guidance=-1.0), "guidance"),
    (dict(chain="both"), "chain='both'"),
])
def test_bad_settings(phantom, kw, match):
    image, mask = phantom
    with pytest.raises(MVGInputError, match=match):
        run(image, mask, **kw)


def test_prompts_without_stages(phantom):
    image, mask = phantom
    with pytest.raises(MVGInputError, match="MVG_PROMPTS has no stages"):
        run(image, mask, prompts=PromptPlan(stages=()))
    with pytest.raises(MVGInputError, match="no stages"):
        run(image, mask, prompts=[])
    with pytest.raises(MVGInputError, match="empty prompt"):
        run(image, mask, prompts=[""])
    with pytest.raises(MVGInputError, match="strength=2"):
        Stage("x", strength=2)

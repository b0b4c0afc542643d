"""segment(): domains and regions, post-processing semantics, user masks, hints, batches, errors, eval CLI."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from fixtures.roi_phantoms import chest_phantom, fundus_phantom
from mvg_backend.errors import MVGInputError
from mvg_backend.prompts import PromptPlan, Stage
from mvg_backend.roi import REGIONS, overlay, postprocess, resolve_region, segment, segment_detailed
from mvg_backend.roi.__main__ import main as roi_main
from mvg_backend.roi.batch import segment_batch

GRAD = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (40, 1))  # a 40x48 image with content


@pytest.fixture(scope="module")
def chest():
    return chest_phantom(192)


# ------------------------------------------------------------------------------------------ regions
def test_regions_and_defaults():
    assert set(REGIONS) == {"lungs", "left_lung", "right_lung", "heart", "mediastinum", "retina", "fov", "optic_disc",
                            "macula", "lesion", "full", "rectangle"}
    assert resolve_region("chest_xray", "auto") == "lungs"
    assert resolve_region("fundus", "auto") == "retina"
    assert resolve_region("skin", "auto") == "lesion"
    assert resolve_region("other", "auto") == "full"
    with pytest.raises(MVGInputError, match=r"'lesion' belongs to domain 'skin'"):
        resolve_region("chest_xray", "lesion")
    with pytest.raises(MVGInputError, match="domain='ct'"):
        segment(GRAD, "ct", "full")


def test_full_and_rectangle_work_on_any_image_size_and_type():
    assert segment(GRAD, "other", "full").tolist() == np.ones((40, 48)).tolist()
    rect = segment((GRAD * 255).astype(np.uint8), "chest_xray", "rectangle", rect="0.25, 0.5, 0.75, 1.0")
    assert rect.dtype == np.float32 and rect.shape == (40, 48)
    ys, xs = np.nonzero(rect)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (20, 39, 12, 35)
    assert segment(np.zeros((40, 48, 4), np.uint8), "other", "rectangle", rect=(0, 0, 0.5, 0.5)).sum() == 20 * 24
    with pytest.raises(MVGInputError, match="left, top, right, bottom"):
        segment(GRAD, "other", "rectangle", rect="0.5, 0.5")
    with pytest.raises(MVGInputError, match="left < right"):
        segment(GRAD, "other", "rectangle", rect="0.8, 0, 0.2, 1")


@pytest.mark.parametrize("image, message", [
    (np.zeros((0, 0), np.uint8), "empty"),
    (np.zeros((0, 32, 3), np.float32), "empty"),
    (np.full((64, 64), 0.4, np.float32), "constant"),
    (np.full((32, 32, 3), 7, np.uint8), "constant"),
    (np.ones((1, 1), np.float32), "1x1 pixels"),
    (np.ones((1, 1, 3), np.uint8), "1x1 pixels"),
    (np.zeros((2, 32, 32, 3), np.float32), "batch of 2"),
    (np.full((16, 16), 2.0, np.float32), "0..1"),
])
def test_unusable_images_give_actionable_errors(image, message):
    with pytest.raises(MVGInputError, match=message) as err:
        segment(image, "chest_xray", "lungs")
    assert "image" in str(err.value)


def test_constant_image_is_fine_without_analysis():
    flat = np.full((32, 32), 0.5, np.float32)
    assert segment(flat, "chest_xray", "full").all()
    assert segment(flat, "fundus", "rectangle").any()


# ------------------------------------------------------------------------------------ post-processing
def test_dilate_erode_in_pixels():
    mask = np.zeros((60, 60), np.float32)
    mask[20:40, 20:40] = 1
    grown = postprocess(mask, dilate=5)
    ys, xs = np.nonzero(grown)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (15, 44, 15, 44)
    assert grown[15, 15] == 0  # a disk: the corners are rounded
    shrunk = postprocess(mask, dilate=-5)
    ys, xs = np.nonzero(shrunk)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (25, 34, 25, 34)
    edge = np.zeros((30, 30), np.float32)
    edge[:, :10] = 1  # touching the image border: only the inner edge moves
    assert postprocess(edge, dilate=-3)[:, :7].all() and not postprocess(edge, dilate=-3)[:, 7:].any()


def test_feather_ramps_over_the_given_width():
    mask = np.zeros((40, 80), np.float32)
    mask[:, 40:] = 1
    soft = postprocess(mask, feather=8)
    row = soft[20]
    assert row[:35].max() == 0 and row[45:].min() == 1
    np.testing.assert_allclose(row[36:44], [0.0625, 0.1875, 0.3125, 0.4375, 0.5625, 0.6875, 0.8125, 0.9375], atol=1e-6)
    assert np.all(np.diff(row) >= 0)


def test_fill_holes_and_keep_largest():
    mask = np.zeros((50, 50), np.float32)
    mask[5:25, 5:25] = 1
    mask[12:18, 12:18] = 0  # a hole
    mask[30:45, 30:45] = 1
    mask[2:4, 40:42] = 1
    assert postprocess(mask, fill_holes=True)[15, 15] == 1
    two = postprocess(mask, keep_largest=2)
    assert two[3, 41] == 0 and two[10, 10] == 1 and two[35, 35] == 1 and two[15, 15] == 0
    assert postprocess(mask, keep_largest=1)[35, 35] == 0
    soft = np.full((8, 8), 0.3, np.float32)
    assert postprocess(soft) is not soft and np.array_equal(postprocess(soft), soft)  # no op: soft mask kept
    with pytest.raises(MVGInputError, match="keep_largest"):
        postprocess(mask, keep_largest=-1)


# ----------------------------------------------------------------------------------------- user masks
def test_combine_modes(chest):
    auto = segment(chest["image"], "chest_xray", "lungs")
    user = np.zeros_like(auto)
    user[:, :40] = 1  # overlaps the right lung's lateral part and the outside
    replaced = segment(chest["image"], "chest_xray", "lungs", user_mask=user, combine="replace")
    np.testing.assert_array_equal(replaced, user)
    np.testing.assert_array_equal(segment(chest["image"], "chest_xray", "lungs", user_mask=user, combine="union"),
                                  np.maximum(auto, user))
    np.testing.assert_array_equal(segment(chest["image"], "chest_xray", "lungs", user_mask=user,
                                          combine="intersect"), np.minimum(auto, user))
    small = cv2.resize(user, (48, 48), interpolation=cv2.INTER_NEAREST)  # another size: resized to the image
    assert segment(chest["image"], "chest_xray", "lungs", user_mask=small, combine="replace").shape == auto.shape
    subtracted = segment(chest["image"], "chest_xray", "lungs", user_mask=user, combine="subtract")
    np.testing.assert_array_equal(subtracted, auto * (1 - user))
    with pytest.raises(MVGInputError, match="combine='add'"):
        segment(chest["image"], "chest_xray", "lungs", user_mask=user, combine="add")


def test_replace_needs_no_image_content_and_empty_user_masks_are_ignored(chest):
    flat = np.full((32, 32), 0.5, np.float32)
    user = np.zeros((32, 32), np.float32)
    user[4:10, 4:10] = 1
    assert segment(flat, "chest_xray", "lungs", user_mask=user, combine="replace").sum() == 36
    result = segment_detailed(chest["image"], "chest_xray", "lungs", user_mask=np.zeros((64, 64)), combine="replace")
    assert any("user mask is empty" in n for n in result.notes)
    np.testing.assert_array_equal(result.mask, segment(chest["image"], "chest_xray", "lungs"))


def test_steps_that_would_empty_the_mask_are_skipped(chest):
    user = np.zeros(chest["image"].shape, np.float32)
    user[:5, :5] = 1  # a corner: no lung there
    result = segment_detailed(chest["image"], "chest_xray", "lungs", user_mask=user, combine="intersect")
    assert result.mask.any() and any("empty" in w for w in result.warnings)
    result = segment_detailed(GRAD, "other", "rectangle", rect="0.4, 0.4, 0.6, 0.6", dilate=-30)
    assert result.mask.any() and any("post-processing" in w for w in result.warnings)


# --------------------------------------------------------------------------------------------- hints
def test_chest_hint_narrows_to_side_and_zone(chest):
    lungs = segment_detailed(chest["image"], "chest_xray", "lungs")
    right = lungs.analysis.parts["right_lung"] >= 0.5
    narrowed = segment_detailed(chest["image"], "chest_xray", "lungs", hint="right lower lung")
    mask = narrowed.mask >= 0.5
    rows = np.flatnonzero(right.any(axis=1))
    assert mask.any() and (mask <= right).all()
    assert np.flatnonzero(mask.any(axis=1)).min() >= rows[0] + 2 * (rows[-1] - rows[0]) / 3 - 1
    assert any("narrowed" in n for n in narrowed.notes)
    both_bases = segment(chest["image"], "chest_xray", "lungs", hint=["left base", "right base"]) >= 0.5
    w = mask.shape[1]
    assert both_bases[:, : w // 2].any() and both_bases[:, w // 2 :].any()
    ignored = segment_detailed(chest["image"], "chest_xray", "lungs", hint="diffuse")
    assert any("names no place" in w for w in ignored.warnings)
    np.testing.assert_array_equal(ignored.mask, lungs.mask)


def test_fundus_hint_macula_and_disc():
    ph = fundus_phantom(256)
    retina = segment_detailed(ph["image"], "fundus", "retina", hint="macular edema")
    macula = segment(ph["image"], "fundus", "macula")
    np.testing.assert_array_equal(retina.mask >= 0.5, (macula >= 0.5) & (retina.analysis.parts["retina"] >= 0.5))
    ring = segment(ph["image"], "fundus", "fov", hint="peripapillary atrophy") >= 0.5
    assert ring.any() and (ring & ph["optic_disc"]).sum() < 0.05 * ph["optic_disc"].sum()
    upper = segment(ph["image"], "fundus", "fov", hint="superior arcade") >= 0.5
    assert upper.any() and np.flatnonzero(upper.any(axis=1)).max() < 0.6 * upper.shape[0]


# -------------------------------------------------------------------------------------- batch, overlay
def test_batch_user_mask_broadcast_hints_and_summary(chest):
    image = np.repeat(chest["image"][None, ..., None], 3, axis=-1)
    batch = np.concatenate([image, image[:, :, ::-1]])  # the second one mirrored
    user = np.zeros((1, 32, 32), np.float32)
    user[0, :4, :4] = 1
    plan = PromptPlan(stages=(Stage("small effusion", roi_hint="right lower lung"),
                              Stage("large effusion", roi_hint="right lower lung")), domain="fundus")
    masks, previews, summary = segment_batch(batch, "chest_xray", "auto", user_masks=user, prompts=plan,
                                             combine="union", feather=2.0)
    assert masks.shape == (2, 192, 192) and previews.shape == (2, 192, 192, 3)
    assert masks.dtype == np.float32 and previews.dtype == np.float32
    assert "'right lower lung'" in summary and "image 2:" in summary and "WARNING: the prompts are for domain" in summary
    assert masks[0, 0, 0] == 1.0  # the user's corner is in (union)
    with pytest.raises(MVGInputError, match="one mask, or one per image"):
        segment_batch(batch, "chest_xray", "auto", user_masks=np.zeros((3, 8, 8)))


def test_overlay_tints_inside_and_leaves_outside():
    image = np.full((32, 32, 3), 0.5, np.float32)
    mask = np.zeros((32, 32), np.float32)
    mask[8:24, 8:24] = 1
    out = overlay(image, mask)
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0], image[0, 0])
    assert out[16, 16, 0] > out[16, 16, 1]  # tinted red inside
    assert (np.abs(out - image).sum(axis=2) > 0)[7:25, 7:25].any()


# ------------------------------------------------------------------------------------------ eval CLI
def test_eval_command_on_a_small_manifest(tmp_path, capsys):
    ph = fundus_phantom(192)
    cv2.imwrite(str(tmp_path / "eye.png"), cv2.cvtColor((ph["image"] * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "fov.png"), ph["fov"].astype(np.uint8))  # a 0/1 mask
    disc = cv2.resize(ph["optic_disc"].astype(np.uint8) * 255, (96, 96), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(tmp_path / "disc.jpg"), disc)  # half size, JPEG
    with open(tmp_path / "m.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "image", "fov_mask", "od_mask"])
        writer.writerow(["a", "eye.png", "fov.png", "disc.jpg"])
        writer.writerow(["b", "missing.png", "fov.png", "disc.jpg"])
    rc = roi_main(["eval", str(tmp_path / "m.csv"), str(tmp_path), "--csv", str(tmp_path / "out.csv")])
    out = capsys.readouterr().out
    assert rc == 0
    lines = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert lines["fov"][1] == "1" and float(lines["fov"][2]) > 0.98 and lines["fov"][6] == "1"  # 1 failure
    assert float(lines["optic_disc"][2]) > 0.85 and "centre inside the true disc: 100.0%" in out
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [r["task"] for r in rows] == ["fov", "optic_disc", "fov", "optic_disc"]
    assert "does not exist" in rows[2]["error"]
    assert roi_main(["eval", str(tmp_path / "nope.csv"), str(tmp_path)]) == 2


def test_hints_written_by_report_to_prompts_are_understood(chest):
    """The rule engine's ROI hints (mvg_backend/prompts/vocab) for each domain."""
    lungs = segment_detailed(chest["image"], "chest_xray", "lungs")
    for hint in ("right lower lung (costophrenic angle)", "both lungs (perihilar)", "left upper lung (apex and "
                 "periphery)", "right lung periphery (pleura)", "both lungs (upper zones)"):
        result = segment_detailed(chest["image"], "chest_xray", "lungs", hint=hint)
        assert result.warnings == [] and 0 < (result.mask >= 0.5).sum() < (lungs.mask >= 0.5).sum(), hint
    heart = segment_detailed(chest["image"], "chest_xray", "auto", hint="heart")  # auto: the place is the region
    assert heart.warnings == [] and (heart.mask >= 0.5).any() and not ((heart.mask >= 0.5) & (lungs.mask >= 0.5)).any()
    in_lungs = segment_detailed(chest["image"], "chest_xray", "lungs", hint="heart")  # the heart is no lung place
    assert any("would leave the mask empty" in w for w in in_lungs.warnings)
    ph = fundus_phantom(192)
    for hint in ("macula", "optic disc", "retina (posterior pole)"):
        result = segment_detailed(ph["image"], "fundus", "fov", hint=hint)
        assert result.warnings == [] and (result.mask >= 0.5).any(), hint
    skin = segment_detailed(np.dstack([GRAD] * 3), "skin", "full", hint="lesion and its surrounding skin")
    assert skin.warnings == [] and skin.mask.any()


def test_failed_automatic_methods_fall_back_predictably():
    """Never a silent empty mask: a failed method says so and uses its documented fallback shape."""
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))  # nothing lung-like, no dark spot
    lungs = segment_detailed(ramp, "chest_xray", "lungs")
    assert lungs.fallback and any("failed" in w for w in lungs.warnings)
    assert any("anatomical prior ellipse" in n for n in lungs.notes)
    assert lungs.components >= 1 and 0.05 < lungs.area_fraction < 0.5
    assert "FALLBACK" in lungs.describe() and "WARNING" in lungs.describe()
    checker = np.kron(np.eye(2, dtype=np.float32), np.ones((20, 20), np.float32))  # two dark corners only
    lesion = segment_detailed(checker, "skin", "lesion")
    assert lesion.fallback and any("centred ellipse" in n for n in lesion.notes)
    assert lesion.mask[20, 20] == 1 and lesion.mask[0, 0] == 0 and lesion.mask[0, 39] == 0
    macula = segment_detailed(ramp, "fundus", "macula")
    assert macula.fallback and any("no dark macula" in n for n in macula.notes) and macula.mask.any()


def test_mask_command_writes_a_mask_png_for_the_pie_cli(tmp_path, capsys, chest):
    src = tmp_path / "cxr.png"
    cv2.imwrite(str(src), (chest["image"] * 255).astype(np.uint8))
    rc = roi_main(["mask", str(src), "--domain", "chest_xray", "--hint", "left lung", "--dilate", "2",
                   "--out", str(tmp_path / "m.png"), "--overlay", str(tmp_path / "o.png")])
    assert rc == 0 and "chest_xray / lungs" in capsys.readouterr().out
    mask = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == chest["image"].shape and set(np.unique(mask)) == {0, 255}
    assert not mask[:, : mask.shape[1] // 2].any()  # the patient's left lung only
    assert cv2.imread(str(tmp_path / "o.png")).shape == (*chest["image"].shape, 3)
    assert roi_main(["mask", str(tmp_path / "none.png"), "--domain", "skin", "--out", str(tmp_path / "x.png")]) == 2


def test_every_domain_has_its_regions():
    from mvg_backend.domains import DOMAINS
    from mvg_backend.roi.api import DEFAULT_REGION, REGIONS_BY_DOMAIN

    assert tuple(REGIONS_BY_DOMAIN) == DOMAINS and tuple(DEFAULT_REGION) == DOMAINS


# ------------------------------------------------------------- inputs that once gave silently wrong masks
SQUARE = np.zeros((128, 128), np.float32)
SQUARE[54:74, 54:74] = 1  # a 20 px square
TEXTURE = np.random.default_rng(1).random((128, 128)).astype(np.float32)


def test_a_feather_wider_than_the_mask_is_capped_so_a_core_stays_fully_editable(caplog):
    result = segment_detailed(TEXTURE, "other", "full", user_mask=SQUARE, combine="replace", feather=200)
    assert result.mask.max() == 1.0 and (result.mask == 1.0).sum() >= 16  # before: every pixel 0.3..0.53
    message = next(w for w in result.warnings if w.startswith("feather=200 px is wider than the mask allows"))
    assert "capped to 10 px" in message and message in caplog.text and message in result.describe()
    fine = segment_detailed(TEXTURE, "other", "full", user_mask=SQUARE, combine="replace", feather=6)
    assert not fine.warnings and (fine.mask == 1.0).any()


def test_dilate_and_feather_are_bounded_by_the_image():
    image = TEXTURE[:64, :64]
    result = segment_detailed(image, "other", "rectangle", rect="0.4, 0.4, 0.6, 0.6", dilate=2000)
    assert result.mask.all() and any("dilate=2000 px is more than the image's diagonal (91 px)" in w
                                     for w in result.warnings)
    eroded = segment_detailed(image, "other", "rectangle", rect="0.4, 0.4, 0.6, 0.6", dilate=-2000)
    assert eroded.mask.any() and any("would leave the mask empty" in w for w in eroded.warnings)
    # past 32 px the disk is a Euclidean distance transform: the same size as OpenCV's disk, up to its edge
    square = np.zeros((200, 200), np.float32)
    square[90:110, 90:110] = 1
    grown = postprocess(square, dilate=40) >= 0.5
    kernel = cv2.dilate(square.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (81, 81))) > 0
    assert grown[100, 109 + 40] and not grown[100, 109 + 41] and abs(int(grown.sum()) - int(kernel.sum())) < 100


def test_a_faint_user_mask_is_treated_as_empty_with_a_warning():
    faint = np.full((64, 64), 0.001, np.float32)
    result = segment_detailed(TEXTURE[:64, :64], "other", "rectangle", user_mask=faint, combine="replace")
    assert any("the user mask is faint: its strongest value is 0.001" in w for w in result.warnings)
    np.testing.assert_array_equal(result.mask, segment(TEXTURE[:64, :64], "other", "rectangle"))
    sixteen_bit = (SQUARE * 65).astype(np.uint16)  # a 0/1 mask that was scaled by 65 instead of 65535
    assert any("faint" in w for w in segment_detailed(TEXTURE, "other", "full", user_mask=sixteen_bit).warnings)
    assert not segment_detailed(TEXTURE, "other", "full", user_mask=SQUARE * 0.6).warnings  # soft but usable


@pytest.mark.parametrize("size", [64, 256])
def test_a_near_constant_chest_image_falls_back_to_the_prior_lungs(size, caplog):
    image = np.full((size, size), 0.5, np.float32)
    image[size // 2, size // 2] = 0.6  # one pixel differs: once gave 4-pixel "lungs"
    result = segment_detailed(image, "chest_xray", "lungs")
    assert result.fallback and result.area_fraction > 0.1
    assert any("almost no contrast" in n for n in result.notes)
    assert "automatic lungs failed" in caplog.text and "(FALLBACK)" in result.describe()


@pytest.mark.parametrize("size", [64, 256])
def test_a_dark_fundus_image_with_one_bright_dot_falls_back_to_a_plausible_macula(size):
    image = np.zeros((size, size, 3), np.float32)
    image[size // 2 - 1:size // 2 + 2, size // 2 - 1:size // 2 + 2] = 1.0  # once: a 1-pixel macula, or a crash
    result = segment_detailed(image, "fundus", "macula")
    assert result.fallback and result.area_fraction > 0.01
    assert {"fov", "optic_disc", "macula", "retina"} <= result.analysis.fallbacks
    assert any("almost no contrast" in n for n in result.notes)
    assert any("automatic macula failed" in w for w in result.warnings)


def test_a_hint_on_an_image_too_small_to_analyse_is_skipped_with_a_warning():
    small = np.random.default_rng(2).random((16, 16)).astype(np.float32)
    result = segment_detailed(small, "chest_xray", "rectangle", hint="right lower lung")
    assert result.mask.any() and any("region hint not applied: image is 16x16 px: too small" in w
                                     for w in result.warnings)
    with pytest.raises(MVGInputError, match="too small for automatic chest_xray analysis"):
        segment(small, "chest_xray", "lungs")

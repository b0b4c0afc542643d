"""CLIP-I with a tiny random CLIP vision model, and classifier confidence (TorchScript file, callable)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fixtures.metrics_sequences import T, base_image, identical, ramp, roi_mask, write_tiny_clip_vision, \
    write_tiny_torchscript_classifier
from mvg_backend.errors import MVGInputError
from mvg_backend.metrics import CallableClassifier, TransformersCLIPEmbedder, clip_i, evaluate_trajectory, \
    load_classifier, resolve_label
from mvg_backend.metrics.classifier import label_from_prompts
from mvg_backend.prompts import plan


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return write_tiny_clip_vision(tmp_path_factory.mktemp("clip") / "tiny_clip")


def test_clip_i_with_a_tiny_clip_vision_folder(clip_dir):
    embed = TransformersCLIPEmbedder(clip_dir)
    same = clip_i(identical(4), base_image(), embed)
    assert same.values == pytest.approx([1.0] * 4, abs=1e-5)
    rng = np.random.default_rng(0)
    noisy = np.clip(identical(3) + rng.normal(0, 0.3, identical(3).shape), 0, 1).astype(np.float32)
    other = clip_i(noisy, base_image(), embed)
    assert all(-1.0 <= v < 0.9999 for v in other.values)
    result = evaluate_trajectory(ramp(), base_image(), roi_mask(), clip=clip_dir, anatomy=False)
    values = result.metrics["clip_i"]["values"]
    assert len(values) == T and values[0] == pytest.approx(1.0, abs=1e-5)
    gate = result.gate("clip_i")
    assert gate.evaluated and gate.value == pytest.approx(min(values)) and "CLIP-I" in gate.reason


def test_clip_folder_is_never_downloaded(tmp_path):
    with pytest.raises(MVGInputError, match="nothing is downloaded"):
        TransformersCLIPEmbedder(tmp_path / "openai/clip-vit-base-patch32")


def test_torchscript_classifier_with_json(tmp_path):
    path = write_tiny_torchscript_classifier(tmp_path / "centre.pt")
    clf = load_classifier(path)
    assert clf.labels == ["Effusion", "Other"]
    result = evaluate_trajectory(ramp(), base_image(), roi_mask(), classifier=clf, label="pleural effusion",
                                 anatomy=False)
    conf = result.metrics["confidence"]
    assert conf["label"] == "Effusion" and conf["spearman_rho"] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(conf["values"], conf["values"][1:]))
    assert result.gate("confidence_rho").passed
    # regression: the same rising curve is the wrong way
    back = evaluate_trajectory(ramp(), base_image(), roi_mask(), classifier=clf, label="Effusion",
                               direction="regression", anatomy=False)
    gate = back.gate("confidence_rho")
    assert back.metrics["confidence"]["expected_sign"] == -1 and gate.value == pytest.approx(-1.0)
    assert not gate.passed and "falls" in gate.reason
    falling = evaluate_trajectory(ramp()[::-1].copy(), base_image(), roi_mask(), classifier=clf, label="Effusion",
                                  direction="regression", anatomy=False)
    assert falling.gate("confidence_rho").passed


def test_classifier_file_errors(tmp_path):
    path = write_tiny_torchscript_classifier(tmp_path / "c.pt")
    path.with_suffix(".json").unlink()
    with pytest.raises(MVGInputError, match="no c.json beside it"):
        load_classifier(path)
    (tmp_path / "junk.pt").write_bytes(b"not torchscript")
    (tmp_path / "junk.json").write_text(json.dumps({"labels": ["A"]}))
    with pytest.raises(MVGInputError, match="not a TorchScript file"):
        load_classifier(tmp_path / "junk.pt")
    with pytest.raises(MVGInputError, match="no such file"):
        load_classifier(tmp_path / "missing.pt")
    desc = tmp_path / "desc.json"
    desc.write_text(json.dumps({"file": "c2.pt"}))
    write_tiny_torchscript_classifier(tmp_path / "c2.pt", labels=("Nevus", "Melanoma"))
    desc.write_text(json.dumps({**json.loads((tmp_path / "c2.json").read_text()), "file": "c2.pt"}))
    assert load_classifier(desc).labels == ["Nevus", "Melanoma"]


def test_callable_classifier_and_labels_from_prompts():
    calls = []

    def fn(images):
        calls.append(images.shape)
        return np.stack([images.mean(axis=(1, 2, 3)), 1 - images.mean(axis=(1, 2, 3))], axis=1)

    clf = CallableClassifier(fn, ["Cardiomegaly", "Effusion"])
    prompts = plan("Small right pleural effusion. No pneumothorax.", "chest_xray", stages=2)
    assert label_from_prompts(prompts, clf.labels)[0] == "Effusion"
    result = evaluate_trajectory(ramp(), base_image(), roi_mask(), classifier=clf, prompts=prompts, anatomy=False)
    conf = result.metrics["confidence"]
    assert conf["label"] == "Effusion" and "from the MVG_PROMPTS finding 'Effusion'" in " ".join(conf["notes"])
    assert conf["spearman_rho"] == pytest.approx(-1.0)  # 1 - brightness falls as the ROI brightens
    assert not result.gate("confidence_rho").passed and calls
    # no label anywhere: the gate says why
    nolabel = evaluate_trajectory(ramp(), base_image(), roi_mask(), classifier=CallableClassifier(fn, ["A", "B"]),
                                  anatomy=False)
    assert nolabel.gate("confidence_rho").status == "skipped" and "label" in nolabel.gate("confidence_rho").reason
    with pytest.raises(MVGInputError, match="not one of the classifier's labels"):
        evaluate_trajectory(ramp(), classifier=clf, label="Pneumothorax", anatomy=False)


def test_resolve_label():
    labels = ["Atelectasis", "Effusion", "Pleural_Thickening", "Lung Opacity", ""]
    assert resolve_label("pleural effusion", labels) == "Effusion"
    assert resolve_label("a large right pleural effusion", labels) == "Effusion"
    assert resolve_label("pleural thickening", labels) == "Pleural_Thickening"
    assert resolve_label("EFFUSION", labels) == "Effusion"
    assert resolve_label("Hernia", labels) is None

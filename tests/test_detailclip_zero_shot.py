"""Zero-shot single-object classification (detailclip.zero_shot, `cli.py zero-shot`)."""

from __future__ import annotations

import json

import pytest
import torch

from clevr_ds.captions import VisibilityRule, single_object_crops
from clevr_ds.vocab import Vocabulary
from detailclip.data import SplitImages
from detailclip.zero_shot import class_accuracy, single_object_items
from tests.conftest import run_cli


def test_class_accuracy_splits_colour_and_shape():
    vocabulary = Vocabulary.load()
    classes = vocabulary.classes
    objects = [{"color": "red", "shape": "cube"}, {"color": "red", "shape": "sphere"},
               {"color": "blue", "shape": "cylinder"}, {"color": "green", "shape": "cube"}]
    guesses = ["red cube", "red cylinder", "green cylinder", "blue sphere"]
    predicted = torch.tensor([classes.index(g) for g in guesses])
    assert class_accuracy(predicted, objects, vocabulary) == {"items": 4, "accuracy": 0.25, "colour_accuracy": 0.5,
                                                              "shape_accuracy": 0.5}
    assert vocabulary.classes == [f"{c} {s}" for c, s in vocabulary.class_attributes]


def test_class_accuracy_of_shape_classes_has_no_colour_figure():
    vocabulary = Vocabulary.of_family("aerial")
    objects = [{"color": "red", "shape": "car"}, {"color": "white", "shape": "ship"}, {"color": "gray", "shape": "bus"}]
    predicted = torch.tensor([vocabulary.classes.index(g) for g in ("car", "small boat", "bus")])
    assert class_accuracy(predicted, objects, vocabulary) == {"items": 3, "accuracy": 2 / 3, "colour_accuracy": None,
                                                              "shape_accuracy": 2 / 3}


def test_single_object_items_follow_the_crops(tiny_dataset):
    data = SplitImages.load(tiny_dataset, "val")
    rule = VisibilityRule(64)
    items = single_object_items(data, rule, 2.0, 64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    crops = single_object_crops(data.scenes, rule, 2.0)
    assert items.patches.shape == (len(crops), 3, 64, 64) and items.objects == [obj for _, _, obj in crops]
    # an unclamped crop is twice the object's longest side: the object fills half the input
    assert torch.allclose(items.object_pixels.median(), torch.tensor(32.0), atol=0.5)
    assert (items.object_pixels <= 32.0 + 1e-4).all()


@torch.no_grad()
def _direct_predictions(root, factors) -> list[tuple[list[str], list[str]]]:
    """(truth, predicted) class names per factor: the crops' objects, and the argmax of a direct
    open_clip forward (image tower on the crops; text tower on CLIP's 80 templates, averaged)."""
    import open_clip
    import torch.nn.functional as F
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    from detailclip.backbones import load_backbone

    backbone = load_backbone("CLEVR-DS-ViT-T-16", "clevr-ds-v3", device="cpu")  # the default, for its weights
    model, tokenizer = backbone.model, open_clip.get_tokenizer("CLEVR-DS-ViT-T-16")
    classes = Vocabulary.load().classes
    text = torch.stack([F.normalize(F.normalize(model.encode_text(tokenizer([t(c) for t in OPENAI_IMAGENET_TEMPLATES])),
                                                dim=-1).mean(0), dim=0) for c in classes])
    data = SplitImages.load(root, "val")
    out = []
    for factor in factors:
        items = single_object_items(data, VisibilityRule(backbone.image_size, 4.0), factor, backbone.image_size,
                                    backbone.mean, backbone.std)
        image = F.normalize(model.encode_image(items.patches), dim=-1)
        out.append(([o["class"] for o in items.objects], [classes[i] for i in (image @ text.T).argmax(1).tolist()]))
    return out


def test_zero_shot_cli_reports_every_factor(tiny_dataset, tmp_path):
    out = tmp_path / "zs.json"
    proc = run_cli("zero-shot", "--data", str(tiny_dataset), "--split", "val", "--factor", "2", "--factor", "4",
                   "--out", str(out), "--quiet")
    report = json.loads(out.read_text())
    assert report["backbone"]["backbone"] == "CLEVR-DS-ViT-T-16" and report["split"] == "val"
    first, second = report["reports"]
    assert (first["factor"], first["items"], second["factor"]) == (2.0, 10, 4.0)
    for r, (truth, predicted) in zip(report["reports"], _direct_predictions(tiny_dataset, (2.0, 4.0))):
        # every prediction from a direct open_clip forward, the figures counted from those
        assert [p["truth"] for p in r["predictions"]] == truth
        assert [p["predicted"] for p in r["predictions"]] == predicted
        n = len(truth)
        assert r["items"] == n and r["accuracy"] == pytest.approx(sum(t == p for t, p in zip(truth, predicted)) / n)
        assert r["colour_accuracy"] == pytest.approx(sum(t.split()[0] == p.split()[0] for t, p in zip(truth, predicted)) / n)
        assert r["shape_accuracy"] == pytest.approx(sum(t.split()[1] == p.split()[1] for t, p in zip(truth, predicted)) / n)
        assert f"{r['accuracy']:.3f}" in proc.stdout
    assert first["object_pixels"] > second["object_pixels"]


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/ds"], "no split"),
    (["--split", "train"], "no split"),
    (["--backbone", "no-such-model"], "unknown open_clip architecture"),
    (["--factor", "0.5"], "0.5 is not in the range x>=1"),
])
def test_zero_shot_bad_input(tiny_dataset, tmp_path, capsys, args, message):
    from cli import main

    base = (["--data", str(tiny_dataset)] if "--data" not in args else []) + (["--split", "val"] if "--split" not in args else [])
    assert main(["zero-shot", *base, *args, "--out", str(tmp_path / "zs.json"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_zero_shot_warns_about_random_weights(tiny_dataset, capsys):
    from cli import main

    assert main(["zero-shot", "--data", str(tiny_dataset), "--split", "val", "--backbone", "tiny-clip-vit-p8-32",
                 "--pretrained", "none", "--factor", "2", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "tiny-clip-vit-p8-32 has random weights" in captured.err
    assert "tiny-clip-vit-p8-32 (none)" in captured.out and len(captured.out.splitlines()) == 3

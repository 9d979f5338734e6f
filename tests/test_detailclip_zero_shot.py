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


def test_single_object_items_follow_the_crops(tiny_dataset):
    data = SplitImages.load(tiny_dataset, "val")
    rule = VisibilityRule(64)
    items = single_object_items(data, rule, 2.0, 64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    crops = single_object_crops(data.scenes, rule, 2.0)
    assert items.patches.shape == (len(crops), 3, 64, 64) and items.objects == [obj for _, _, obj in crops]
    # an unclamped crop is twice the object's longest side: the object fills half the input
    assert torch.allclose(items.object_pixels.median(), torch.tensor(32.0), atol=0.5)
    assert (items.object_pixels <= 32.0 + 1e-4).all()


def test_zero_shot_cli_reports_every_factor(tiny_dataset, tmp_path):
    out = tmp_path / "zs.json"
    proc = run_cli("zero-shot", "--data", str(tiny_dataset), "--factor", "2", "--factor", "4", "--out", str(out),
                   "--quiet")
    report = json.loads(out.read_text())
    assert report["backbone"]["backbone"] == "CLEVR-DS-ViT-T-16" and report["split"] == "val"
    first, second = report["reports"]
    assert (first["factor"], first["items"], second["factor"]) == (2.0, 10, 4.0)
    for r in report["reports"]:
        right = [p["truth"] == p["predicted"] for p in r["predictions"]]
        assert len(right) == r["items"] and r["accuracy"] == pytest.approx(sum(right) / len(right))
        assert f"{r['accuracy']:.3f}" in proc.stdout
    assert first["object_pixels"] > second["object_pixels"]


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/ds"], "no split"),
    (["--split", "test"], "no split"),
    (["--backbone", "no-such-model"], "unknown open_clip architecture"),
    (["--factor", "0.5"], "0.5 is not in the range x>=1"),
])
def test_zero_shot_bad_input(tiny_dataset, tmp_path, capsys, args, message):
    from cli import main

    base = ["--data", str(tiny_dataset)] if "--data" not in args else []
    assert main(["zero-shot", *base, *args, "--out", str(tmp_path / "zs.json"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_zero_shot_warns_about_random_weights(tiny_dataset, capsys):
    from cli import main

    assert main(["zero-shot", "--data", str(tiny_dataset), "--backbone", "tiny-clip-vit-p8-32", "--pretrained", "none",
                 "--factor", "2", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "tiny-clip-vit-p8-32 has random weights" in captured.err
    assert "tiny-clip-vit-p8-32 (none)" in captured.out and len(captured.out.splitlines()) == 3

"""Backbone training (detailclip.training.backbone_trainer, `cli.py train-backbone`) on the tiny rendered split."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from clevr_ds.dataset import load_vocabulary, split_hash
from detailclip.backbones import load_backbone
from detailclip.data import SplitImages
from detailclip.registry import register
from detailclip.training.backbone_trainer import (STATE_FORMAT, BackboneTrainConfig, BackboneTrainer,
                                                  class_contrastive_loss, contrastive_loss)  # fmt: skip
from detailclip.training.state import load_state, save_state
from tests.conftest import run_cli

TINY = "tiny-clip-vit-p8-32"
TINY_ARGS = ["--split", "val", "--val-split", "val", "--backbone", TINY, "--steps", "4", "--batch-size", "8",
             "--images-per-batch", "4", "--eval-every", "2", "--checkpoint-every", "2", "--hard-negatives", "1",
             "--class-weight", "1", "--class-vector-weight", "1", "--quiet"]


def test_contrastive_loss_targets():
    torch.manual_seed(0)
    image, text = torch.randn(6, 8), torch.randn(6, 8)
    scale = torch.tensor(2.0)
    logits = scale.exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    labels = torch.arange(6)
    clip_loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert torch.allclose(contrastive_loss(image, text, scale, torch.arange(6)), clip_loss)
    # crops 1 and 2 show the same objects: each caption fits both crops, so swapping them is no error
    embeddings = torch.eye(6, 8)
    swapped = embeddings[[0, 2, 1, 3, 4, 5]]
    distinct, shared = torch.arange(6), torch.tensor([0, 1, 1, 3, 4, 5])
    assert torch.allclose(contrastive_loss(embeddings, swapped, scale, shared),
                          contrastive_loss(embeddings, embeddings, scale, shared))
    assert contrastive_loss(embeddings, swapped, scale, shared) < contrastive_loss(embeddings, swapped, scale, distinct)

def test_hard_negatives_compete_only_for_images():
    torch.manual_seed(0)
    image, text = torch.randn(4, 8), torch.randn(4, 8)
    scale = torch.tensor(1.0)
    keys = torch.arange(4)
    plain = contrastive_loss(image, text, scale, keys)
    # a negative text far from every image barely matters; one equal to an image's own caption
    # (another key) costs that image a share of its target mass
    far = torch.cat([text, -image.sum(0, keepdim=True) * 10])
    assert torch.allclose(contrastive_loss(image, far, scale, keys, torch.arange(5)), plain, atol=0.05)
    close = torch.cat([text, text[:1]])
    assert contrastive_loss(image, close, scale, keys, torch.arange(5)) > plain + 0.05
    # an extra text matching image 0: costly as a negative, not when it carries image 0's key
    matching = torch.cat([text, image[:1]])
    as_negative = contrastive_loss(image, matching, scale, keys, torch.arange(5))
    as_positive = contrastive_loss(image, matching, scale, keys, torch.tensor([0, 1, 2, 3, 0]))
    assert plain < as_negative and as_positive < as_negative


def test_class_contrastive_loss_shares_the_target_between_present_classes():
    prompts = torch.eye(3, 4)
    scale = torch.tensor(3.0)
    present = torch.tensor([[True, False, False], [True, True, False], [False, False, False]])
    image = torch.tensor([[1.0, 0, 0, 0], [1.0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    logits = scale.exp() * F.normalize(image[:2], dim=-1) @ prompts.T
    expected = F.cross_entropy(logits, torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0]]))
    assert torch.allclose(class_contrastive_loss(image, prompts, scale, present), expected)  # crop 2 (empty) left out
    wrong = torch.tensor([[0, 0, 1.0, 0], [0, 0, 1.0, 0], [0, 0, 1.0, 0]])
    assert class_contrastive_loss(wrong, prompts, scale, present) > class_contrastive_loss(image, prompts, scale, present)
    empty = class_contrastive_loss(image, prompts, scale, torch.zeros(3, 3, dtype=torch.bool))
    assert empty.item() == 0


def test_train_backbone_cli_writes_open_clip_weights(tiny_dataset, tmp_path):
    import open_clip

    out = tmp_path / "bb.safetensors"
    proc = run_cli("train-backbone", "--data", str(tiny_dataset), "--out", str(out), *TINY_ARGS)
    assert f"wrote {out}" in proc.stdout and "4 steps" in proc.stdout
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["steps"] == 4 and sidecar["model"] == TINY and len(sidecar["val_log"]) == 2
    assert sidecar["data_hash"] == split_hash(tiny_dataset, "val") and 0 <= sidecar["val_acc"] <= 1
    log = pd.read_csv(out.with_name(out.name + ".log.csv"))
    assert list(log["step"]) == [2, 4] and {"loss", "lr", "logit_scale", "val_acc"} <= set(log.columns)

    from safetensors.torch import load_file

    stored = load_file(str(out))
    assert all(t.dtype == torch.float16 for t in stored.values())
    register()
    model = open_clip.create_model(TINY, pretrained=str(out))
    assert all(torch.equal(model.state_dict()[k].half(), v) for k, v in stored.items())
    backbone = load_backbone(TINY, str(out), device="cpu")
    assert not backbone.untrained and backbone.encode_text(["a red cube"]).shape == (1, 32)

    again = run_cli("train-backbone", "--data", str(tiny_dataset), "--out", str(out), "--resume", *TINY_ARGS)
    assert "4 steps" in again.stdout and load_file(str(out)).keys() == stored.keys()
    assert all(torch.equal(load_file(str(out))[k], v) for k, v in stored.items())  # a finished run stays put
    changed = run_cli("train-backbone", "--data", str(tiny_dataset), "--out", str(out), "--resume", "--lr", "0.01",
                      *TINY_ARGS, check=False)
    assert changed.returncode == 1 and "cannot resume" in changed.stderr and "train.lr" in changed.stderr


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/ds", "--out", "x.safetensors"], "no split"),
    (["--out", "x.pt"], "must be a .safetensors file"),
    (["--out", "x.safetensors", "--backbone", "no-such-model"], "unknown open_clip architecture"),
    (["--out", "x.safetensors", "--images-per-batch", "16"], "must not exceed --batch-size"),
])
def test_train_backbone_bad_input(tiny_dataset, tmp_path, capsys, args, message):
    from cli import main

    base = ["--data", str(tiny_dataset)] if "--data" not in args else []
    rest = [a if a not in ("x.pt", "x.safetensors") else str(tmp_path / a) for a in args]
    assert main(["train-backbone", *base, *TINY_ARGS, *rest]) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_resume_matches_an_uninterrupted_run(tiny_dataset, tmp_path):
    data = SplitImages.load(tiny_dataset, "val")
    vocabulary = load_vocabulary(tiny_dataset, "val")
    config = BackboneTrainConfig(model=TINY, steps=4, batch_size=8, images_per_batch=4, hard_negatives=1,
                                 class_weight=1.0, class_vector_weight=1.0)

    def trainer():
        return BackboneTrainer(data, data, vocabulary, config, torch.device("cpu"), {"data": "tiny"})

    straight = trainer()
    for _ in range(4):
        straight.train_step()
    first = trainer()
    for _ in range(2):
        first.train_step()
    save_state(tmp_path / "state.pt", first.state())
    resumed = trainer()
    resumed.load_state(load_state(tmp_path / "state.pt", STATE_FORMAT))
    for _ in range(2):
        resumed.train_step()
    assert resumed.step == straight.step == 4
    for name, value in straight.model.state_dict().items():
        assert torch.allclose(resumed.model.state_dict()[name], value, atol=1e-6), name
    batch = straight.batch()
    assert resumed.batch()[1] == batch[1]  # the caption/crop stream continues identically
    patches, captions, keys, present = batch
    assert len(captions) == len(keys) > len(patches) == len(present)  # hard negatives follow the captions
    assert present.shape[1] == len(vocabulary.classes)

"""The fusion transformer's max branch (issue #14 item 3): zero at the start, so the model begins
exactly as the one without it (the oracle: a model built from the same seed without the branch); its
h is the max over the valid patches of each direction's cosine (the oracle: a numpy loop); trained,
it moves, a checkpoint keeps it and `train --max-directions` records it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from detailclip.checkpoint import load_checkpoint, save_checkpoint
from detailclip.encode import fuse
from detailclip.features import PatchFeatures
from detailclip.fusion import build_fusion
from detailclip.recipe import LossConfig
from detailclip.training.fusion_trainer import TrainConfig, Trainer

DIM = 16


def _model(max_directions: int):
    torch.manual_seed(0)
    return build_fusion("tiny", DIM, dropout=0.0, max_directions=max_directions).eval()


def _features(seed: int = 0, batch: int = 3, patches: int = 9) -> torch.Tensor:
    return F.normalize(torch.randn(batch, patches, DIM, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_a_fresh_max_branch_changes_nothing():
    features = _features()
    with torch.no_grad():
        assert torch.equal(_model(8)(features), _model(0)(features))


def test_the_branch_takes_each_directions_max_over_the_valid_patches():
    model = _model(5)
    features = _features(1) * 2.0  # cosines: the branch normalises the patches itself
    padding = torch.zeros(3, 9, dtype=torch.bool)
    padding[1, 6:] = True
    features[1, 6:] = model.directions[0].detach()  # padding equal to a direction must not count
    with torch.no_grad():
        h = model._max_similarity(features, padding).numpy()
    patches = F.normalize(features, dim=-1).numpy()
    directions = F.normalize(model.directions.detach(), dim=-1).numpy()
    for b in range(3):
        for m in range(5):
            valid = range(6) if b == 1 else range(9)
            assert abs(h[b, m] - max(float(patches[b, p] @ directions[m]) for p in valid)) < 1e-6
    assert h[1, 0] < 0.999


def test_the_trained_branch_shapes_the_vector_and_ignores_padding_and_order():
    model = _model(4)
    with torch.no_grad():
        model.max_mix.weight.copy_(torch.randn(DIM, 4, generator=torch.Generator().manual_seed(2)))
        features = _features(3)
        fused = model(features)
        assert not torch.allclose(fused, _model(0)(features), atol=1e-3)
        order = torch.cat([torch.zeros(1, dtype=torch.long), torch.randperm(8, generator=torch.Generator().manual_seed(4)) + 1])
        torch.testing.assert_close(model(features[:, order]), fused, atol=1e-5, rtol=0)
        padded = torch.cat([features, torch.ones(3, 2, DIM)], dim=1)
        padding = torch.zeros(3, 11, dtype=torch.bool)
        padding[:, 9:] = True
        torch.testing.assert_close(model(padded, padding), fused, atol=1e-5, rtol=0)


def test_training_moves_the_branch_and_a_checkpoint_keeps_it(tmp_path):
    generator = torch.Generator().manual_seed(5)
    levels = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3], dtype=np.int16)
    items = [PatchFeatures(f"img{i}", f"h{i}", F.normalize(torch.randn(9, DIM, generator=generator), dim=-1)
                           .numpy().astype(np.float16), levels) for i in range(12)]
    queries = F.normalize(torch.randn(5, DIM, generator=generator), dim=-1)
    model = _model(6).train()
    directions = model.directions.detach().clone()
    config = TrainConfig(epochs=1, batch_size=4, lr=1e-2, patience=0,
                         loss=LossConfig(teacher_temperature=0, rank_weight=1.0))
    Trainer(model, items, items[:4], queries, config, torch.device("cpu"), run_config={}).train_epoch(progress=False)
    assert model.max_mix.weight.abs().sum() > 0 and not torch.equal(model.directions, directions)
    path = tmp_path / "fusion.pt"
    save_checkpoint(path, model, {"fusion": model.config})
    loaded, _ = load_checkpoint(path, "cpu")
    assert loaded.config["max_directions"] == 6
    assert torch.equal(fuse(loaded, items, device="cpu"), fuse(model.eval(), items, device="cpu"))


def test_train_records_the_branch_in_the_checkpoint(tmp_path, monkeypatch):
    from PIL import Image

    from cli import main

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
    (tmp_path / "classes.txt").write_text("red cube\nblue sphere\n")
    assert main(["train", "--data", "images", "--classes", "classes.txt", "--backbone", "tiny-clip-vit-p8-32",
                 "--pretrained", "none", "--cover-k", "2", "--templates", "short", "--epochs", "1", "--batch-size", "2",
                 "--max-directions", "3", "--quiet", "--out", "m.pt", "--cache-dir", "none"]) == 0
    model, _ = load_checkpoint(tmp_path / "m.pt", "cpu")
    assert model.config["max_directions"] == 3 and tuple(model.directions.shape) == (3, 32)

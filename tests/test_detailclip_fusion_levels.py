"""Level embeddings of the fusion transformer (issue #14 item 3): zero at the start, so the model
begins exactly as the level-blind one (the oracle: a model built from the same seed without them);
trained, they make the fused vector depend on each patch's level but not on the order of the patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detailclip.checkpoint import load_checkpoint, save_checkpoint
from detailclip.encode import fuse
from detailclip.features import PatchFeatures
from detailclip.fusion import MAX_LEVELS, build_fusion
from detailclip.recipe import LossConfig
from detailclip.training.fusion_trainer import TrainConfig, Trainer

DIM = 16


def _model(level_embedding: bool):
    torch.manual_seed(0)
    return build_fusion("tiny", DIM, dropout=0.0, level_embedding=level_embedding).eval()


def _batch(seed: int = 0, patches: int = 9):
    generator = torch.Generator().manual_seed(seed)
    features = F.normalize(torch.randn(3, patches, DIM, generator=generator), dim=-1)
    levels = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 3])[:patches].expand(3, patches)
    return features, levels


def test_a_fresh_level_embedding_changes_nothing():
    features, levels = _batch()
    with torch.no_grad():
        assert torch.equal(_model(True)(features, None, levels), _model(False)(features, None))


def test_levels_matter_and_the_patch_order_does_not():
    model = _model(True)
    with torch.no_grad():
        model.levels.weight.copy_(torch.randn(MAX_LEVELS, DIM, generator=torch.Generator().manual_seed(1)))
        features, levels = _batch()
        fused = model(features, None, levels)
        order = torch.cat([torch.zeros(1, dtype=torch.long), torch.randperm(8, generator=torch.Generator().manual_seed(2)) + 1])
        assert torch.allclose(model(features[:, order], None, levels[:, order]), fused, atol=1e-5)
        other = levels.clone()
        other[:, 1:3] = 3  # two level-1 patches relabelled
        assert not torch.allclose(model(features, None, other), fused, atol=1e-3)
        beyond = levels.clone()
        beyond[:, 6:] = MAX_LEVELS + 5  # deeper levels share the last embedding
        deepest = levels.clone()
        deepest[:, 6:] = MAX_LEVELS - 1
        assert torch.equal(model(features, None, beyond), model(features, None, deepest))


def test_padding_levels_are_ignored_and_missing_levels_are_refused():
    model = _model(True)
    with torch.no_grad():
        model.levels.weight.copy_(torch.randn(MAX_LEVELS, DIM, generator=torch.Generator().manual_seed(3)))
        features, levels = _batch()
        alone = model(features[:1, :6], None, levels[:1, :6])
        padding = torch.zeros(1, 9, dtype=torch.bool)
        padding[:, 6:] = True
        padded_levels = levels[:1].clone()
        padded_levels[:, 6:] = -1  # what collate puts in padding slots
        assert torch.allclose(model(features[:1], padding, padded_levels), alone, atol=1e-5)
        with pytest.raises(ValueError, match="level embeddings"):
            model(features, None)


def test_training_moves_the_level_embeddings_and_a_checkpoint_keeps_them(tmp_path):
    generator = torch.Generator().manual_seed(4)
    items = []
    for i in range(12):
        data = F.normalize(torch.randn(9, DIM, generator=generator), dim=-1).numpy().astype(np.float16)
        items.append(PatchFeatures(f"img{i}", f"h{i}", data, np.array([0, 1, 1, 2, 2, 2, 3, 3, 3], dtype=np.int16)))
    queries = F.normalize(torch.randn(5, DIM, generator=generator), dim=-1)
    model = _model(True).train()
    config = TrainConfig(epochs=2, batch_size=4, lr=1e-2, patience=0,
                         loss=LossConfig(teacher_temperature=0, patch_weight=0.5, rank_weight=1.0))
    trainer = Trainer(model, items, items[:4], queries, config, torch.device("cpu"), run_config={})
    trainer.train_epoch(progress=False)
    assert model.levels.weight[:4].abs().sum() > 0 and model.levels.weight[4:].abs().sum() == 0  # only levels seen
    path = tmp_path / "fusion.pt"
    save_checkpoint(path, model, {"fusion": model.config})
    loaded, config_back = load_checkpoint(path, "cpu")
    assert loaded.config["level_embedding"] is True
    assert torch.equal(fuse(loaded, items, device="cpu"), fuse(model, items, device="cpu"))


def test_bench_runs_a_level_embedding_checkpoint_and_its_levels_reach_the_scores(tmp_path):
    """End to end through `bench --model detailclip`: the same checkpoint with other level vectors
    (zero: the level-blind model) gives other scores, so the levels travel from the cache to the model."""
    import json

    from cli import main
    from tests.benchmark_fixtures import make_checkpoint, make_dataset, random_scenes

    data = make_dataset(tmp_path / "data", random_scenes(6, seed=11))
    scores = {}
    for name, levels in (("random", torch.randn(MAX_LEVELS, 32, generator=torch.Generator().manual_seed(5))),
                         ("zero", torch.zeros(MAX_LEVELS, 32))):
        checkpoint = make_checkpoint(tmp_path / f"{name}.pt", k=2, levels=levels)
        out = tmp_path / name
        assert main(["bench", "--data", str(data), "--out", str(out), "--templates", "short", "--quiet",
                     "--model", "detailclip", "--checkpoint", str(checkpoint), "--cache-dir", str(tmp_path / "cache")]) == 0
        [run] = [json.loads(p.read_text()) for p in out.glob("detailclip*.json")]
        assert run["method_settings"]["fusion"]["level_embedding"] is True
        with np.load(out / run["scores_file"]) as z:
            scores[name] = z["scores"]
    assert not np.allclose(scores["random"], scores["zero"], atol=1e-3)

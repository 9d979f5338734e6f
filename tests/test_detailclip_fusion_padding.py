"""Padded batches: images with different patch counts must behave exactly as each image alone.

Patch counts differ between images for the `objects` scheme (one crop per object) and for mixed
caches; `collate` pads with zero features. The expectations below are computed per image, alone,
with numpy, so a padded slot that leaks into a max (a zero feature has cosine 0, above every
negative similarity) or into a fused vector shows up.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detailclip.encode import collate, fuse
from detailclip.features import PatchFeatures
from detailclip.fusion import build_fusion, max_patch_similarity
from detailclip.recipe import LossConfig
from detailclip.training.fusion_trainer import FeatureBank, TrainConfig, Trainer, teacher_targets
from detailclip.training.losses import patch_matching_loss, sample_per_level

DIM = 16
COUNTS = (3, 7, 12, 1, 5)


AXIS = F.normalize(torch.ones(DIM), dim=0)


def _queries(n=6, seed=1) -> torch.Tensor:
    """Queries in a cone around AXIS."""
    return F.normalize(AXIS + 0.1 * torch.randn(n, DIM, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _items(queries: torch.Tensor, counts=COUNTS, seed=0) -> list[PatchFeatures]:
    """Patch features whose cosine with every query is negative (so a zero padding slot would win a max)."""
    generator = torch.Generator().manual_seed(seed)
    away = -AXIS  # the opposite cone
    items = []
    for i, count in enumerate(counts):
        data = F.normalize(away + 0.1 * torch.randn(count, DIM, generator=generator), dim=-1)
        levels = np.minimum(np.arange(count), 2).astype(np.int16)
        items.append(PatchFeatures(f"img{i}", f"h{i}", data.numpy().astype(np.float16), levels))
    for item in items:
        assert (item.data.astype(np.float32) @ queries.numpy().T < 0).all()
    return items


def _targets_alone(items, queries) -> np.ndarray:
    """[N, Q]: for each image on its own, max over its patches of cos(query, patch)."""
    q = queries.numpy().astype(np.float64)
    return np.stack([(item.data.astype(np.float64) @ q.T).max(0) for item in items])


def test_text_targets_of_a_padded_batch_equal_each_image_alone():
    queries = _queries()
    items = _items(queries)
    expected = _targets_alone(items, queries)
    features, padding, levels = collate(items)
    assert padding is not None and padding.sum(1).tolist() == [12 - c for c in COUNTS]
    assert (levels[padding] == -1).all()
    np.testing.assert_allclose(max_patch_similarity(features, queries, padding).numpy(), expected, atol=1e-6)
    bank = FeatureBank.from_items(items, torch.device("cpu"))
    np.testing.assert_allclose(teacher_targets(bank, queries, chunk=2).numpy(), expected, atol=1e-6)
    for i, item in enumerate(items):
        alone = max_patch_similarity(torch.from_numpy(item.data.astype(np.float32))[None], queries)
        np.testing.assert_allclose(alone[0].numpy(), expected[i], atol=1e-6)


def _patch_loss_by_hand(fused: np.ndarray, items, scale=100.0) -> float:
    """Patch matching, mode "all": every real patch of the batch is a query; its target on image b is
    the max over b's real patches of the cosine, its own patch excluded; pairs with no patch left
    (a one-patch image against its own patch) are not counted."""
    errors = []
    for a, item in enumerate(items):
        for p, query in enumerate(item.data.astype(np.float64)):
            for b, other in enumerate(items):
                sims = [float(query @ x) for r, x in enumerate(other.data.astype(np.float64)) if (b, r) != (a, p)]
                if sims:
                    errors.append((float(fused[b] @ query) - max(sims)) ** 2)
    return scale * float(np.mean(errors))


def test_patch_matching_of_a_padded_batch_counts_real_patches_only():
    items = _items(_queries())
    features, padding, levels = collate(items)
    fused = F.normalize(torch.randn(len(items), DIM, generator=torch.Generator().manual_seed(5)), dim=-1)
    loss = patch_matching_loss(fused, features, padding, levels, mode="all")
    assert float(loss) == pytest.approx(_patch_loss_by_hand(fused.numpy().astype(np.float64), items), rel=1e-5)


@pytest.mark.parametrize("size", ["tiny", "mean"])
def test_fused_vectors_of_a_padded_batch_equal_each_image_alone(size):
    torch.manual_seed(0)
    model = build_fusion(size, DIM, dropout=0.0).eval()
    items = _items(_queries())
    batched = fuse(model, items, batch_size=len(items), device="cpu")
    with torch.no_grad():
        alone = torch.cat([model(torch.from_numpy(item.data.astype(np.float32))[None]) for item in items])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)
    if size == "mean":  # the parameter-free mean, by hand
        by_hand = F.normalize(torch.stack([torch.from_numpy(i.data.astype(np.float32)).mean(0) for i in items]), dim=-1)
        torch.testing.assert_close(batched, by_hand, atol=1e-5, rtol=0)


def test_trainer_epoch_on_items_with_different_patch_counts():
    """One step over the whole set with lr = 0 leaves the model as it is, so the epoch's losses must
    equal the losses computed image by image, alone, by hand."""
    queries = _queries(8)
    items = _items(queries)
    config = TrainConfig(epochs=1, batch_size=len(items), lr=0.0, weight_decay=0.0, warmup=0.0, patience=0, seed=0,
                         loss=LossConfig(teacher_temperature=0, text_weight=1.0, patch_weight=0.5, patch_mode="all",
                                         rank_weight=0.0, list_weight=0.0, detail_weight=0.0))
    torch.manual_seed(0)
    model = build_fusion("tiny", DIM, dropout=0.0)
    trainer = Trainer(model, items, None, queries, config, torch.device("cpu"), {})
    expected_targets = _targets_alone(items, queries)
    np.testing.assert_allclose(trainer.train_targets.numpy(), expected_targets, atol=1e-6)

    model.train()
    with torch.no_grad():
        fused = torch.cat([model(torch.from_numpy(item.data.astype(np.float32))[None]) for item in items]).numpy()
    fused = fused.astype(np.float64)
    text = 100.0 * float(np.mean((fused @ queries.numpy().astype(np.float64).T - expected_targets) ** 2))
    patch = _patch_loss_by_hand(fused, items)
    row = trainer.train_epoch(progress=False)
    assert row["train_text"] == pytest.approx(text, rel=1e-4)
    assert row["train_patch"] == pytest.approx(patch, rel=1e-4)
    assert row["train_loss"] == pytest.approx(text + 0.5 * patch, rel=1e-4)


def test_trainer_learns_on_items_with_different_patch_counts():
    """The sampled patch mode on a padded bank: finite losses that go down, and no padded slot sampled."""
    queries = _queries(8)
    items = _items(queries, counts=(3, 7, 12, 1, 5, 9, 2, 4), seed=3)
    config = TrainConfig(epochs=5, batch_size=4, lr=3e-3, warmup=0.1, patience=0, seed=0,
                         loss=LossConfig(teacher_temperature=0, patch_weight=0.5, patch_mode="sample"))
    torch.manual_seed(0)
    trainer = Trainer(build_fusion("tiny", DIM, dropout=0.0), items, items[:3], queries, config,
                      torch.device("cpu"), {})
    losses = []
    for _ in range(config.epochs):
        row = trainer.train_epoch(progress=False)
        trainer.epoch += 1
        assert all(np.isfinite(v) for v in row.values())
        losses.append(row["train_loss"])
    assert losses[-1] < losses[0]
    # the per-level sample on the padded bank: round(sqrt(n)) of each image's own patches per level
    features, padding, levels = collate(items)
    chosen = sample_per_level(levels, ~padding, torch.Generator().manual_seed(0))
    assert not (chosen & padding).any()
    for i, item in enumerate(items):
        for level in np.unique(item.level_ids):
            n = int((item.level_ids == level).sum())
            assert int(chosen[i, :item.num_patches][torch.from_numpy(item.level_ids == level)].sum()) == max(1, round(n ** 0.5))
    np.testing.assert_allclose(trainer.val_targets.numpy(), _targets_alone(items[:3], queries), atol=1e-6)

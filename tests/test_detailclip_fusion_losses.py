"""Fusion models, distillation losses and a toy training run."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detailclip.features import PatchFeatures
from detailclip.fusion import build_fusion, max_patch_similarity
from detailclip.recipe import LossConfig, TrainConfig
from detailclip.training.fusion_trainer import Trainer
from detailclip.training.losses import (QueryCalibration, detail_weights, distillation_loss, fidelity,
                                        patch_matching_loss, sample_per_level, text_correlation_loss,
                                        text_listwise_loss, text_matching_loss, text_ranking_loss)  # fmt: skip

DIM = 32
LEVELS = torch.tensor([0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2])


def _features(batch, patches=14, seed=0):
    return F.normalize(torch.randn(batch, patches, DIM, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_small_size_matches_the_paper():
    model = build_fusion("small", 512)
    assert 43e6 < sum(p.numel() for p in model.parameters()) < 45e6  # ~44M params in method.md


@pytest.mark.parametrize("size", ["tiny", "small", "base", "mean"])
def test_fusion_is_normalised_and_ignores_padding(size):
    model = build_fusion(size, DIM).eval()
    features = _features(3)
    padding = torch.zeros(3, 14, dtype=torch.bool)
    padding[1, 9:] = True
    fused = model(features, padding)
    assert fused.shape == (3, DIM)
    torch.testing.assert_close(fused.norm(dim=-1), torch.ones(3))
    changed = features.clone()
    changed[1, 9:] = 5.0
    torch.testing.assert_close(model(changed, padding), fused)
    torch.testing.assert_close(model(features[1:2, :9]), fused[1:2], atol=1e-5, rtol=0)


def test_bad_fusion_options():
    with pytest.raises(ValueError, match="unknown fusion size"):
        build_fusion("huge", DIM)
    with pytest.raises(ValueError, match="divisible"):
        build_fusion("base", 36)


def test_losses_are_zero_at_the_target():
    features = _features(4)
    queries = F.normalize(torch.randn(6, DIM, generator=torch.Generator().manual_seed(1)), dim=-1)
    targets = max_patch_similarity(features, queries)
    best = torch.einsum("bpd,qd->bqp", features, queries).argmax(-1)  # [B, Q]
    # a fused vector equal to the best patch of a single query reproduces that query's target
    fused = features[torch.arange(4), best[:, 0]]
    assert float(text_matching_loss(fused @ queries[:1].T, targets[:, :1])) == pytest.approx(0.0, abs=1e-10)
    assert float(text_matching_loss(fused @ queries.T, targets)) > 0
    # one patch per image: nothing else matches it, so no defined target is left
    assert float(patch_matching_loss(features[:, 0], features[:, :1])) == 0.0


def test_patch_matching_excludes_self_similarity():
    features = _features(2, patches=3)
    fused = features[:, 0]
    loss = patch_matching_loss(fused, features, scale=1.0)
    queries = features.reshape(6, DIM)
    sims = torch.einsum("bpd,qd->bqp", features, queries)
    for q in range(6):
        sims[q // 3, q, q % 3] = -1e4
    expected = F.mse_loss(fused @ queries.T, sims.amax(-1))
    torch.testing.assert_close(loss, expected)
    assert float(patch_matching_loss(fused, features, kind="l1")) > 0


def test_per_level_sample_takes_sqrt_count():
    levels = LEVELS.expand(5, -1)
    valid = torch.ones(5, 14, dtype=torch.bool)
    valid[4, 10:] = False
    chosen = sample_per_level(levels, valid, torch.Generator().manual_seed(0))
    assert chosen.sum(1).tolist() == [6, 6, 6, 6, 5]  # 1 + 2 + 3 and 1 + 2 + round(sqrt(5))
    assert not (chosen & ~valid).any()


def test_fidelity():
    target = torch.linspace(0, 1, 10)
    assert fidelity(target, target) == pytest.approx({"corr": 1.0, "mae": 0.0, "rank_corr": 1.0}, abs=1e-6)
    assert fidelity(2 * target + 1, target)["corr"] == pytest.approx(1.0, abs=1e-6)
    assert fidelity(target.exp(), target)["rank_corr"] == pytest.approx(1.0, abs=1e-6)  # monotone: same ranking
    assert fidelity(-target, target)["rank_corr"] == pytest.approx(-1.0, abs=1e-6)


def test_rank_fidelity_is_mean_spearman_per_query():
    from scipy.stats import spearmanr

    generator = torch.Generator().manual_seed(0)
    target = torch.rand(12, 5, generator=generator)
    prediction = target + 0.3 * torch.rand(12, 5, generator=generator)
    expected = sum(spearmanr(prediction[:, q], target[:, q])[0] for q in range(5)) / 5
    assert fidelity(prediction, target)["rank_corr"] == pytest.approx(expected, abs=1e-5)


def test_loss_decreases_on_a_toy_set():
    items = [PatchFeatures(f"toy{i}", f"h{i}", _features(1, seed=i)[0].numpy().astype(np.float16),
                           LEVELS.numpy().astype(np.int16)) for i in range(24)]
    queries = F.normalize(torch.randn(12, DIM, generator=torch.Generator().manual_seed(99)), dim=-1)
    config = TrainConfig(epochs=12, batch_size=8, lr=1e-3, warmup=0.1, patience=0, seed=0,
                         loss=LossConfig(teacher_temperature=0, patch_mode="sample"))
    torch.manual_seed(0)
    model = build_fusion("tiny", DIM, dropout=0.0)
    trainer = Trainer(model, items[:20], items[20:], queries, config, torch.device("cpu"), {})
    losses = []
    for _ in range(config.epochs):
        losses.append(trainer.train_epoch(progress=False)["train_loss"])
        trainer.epoch += 1
    assert losses[-1] < 0.7 * losses[0]
    assert trainer.evaluate()["val_loss"] < losses[0]


def test_loss_weights_select_the_parts():
    features = _features(4)
    queries = F.normalize(torch.randn(6, DIM, generator=torch.Generator().manual_seed(1)), dim=-1)
    targets = max_patch_similarity(features, queries)
    fused = features[:, 0]
    levels = LEVELS.expand(4, -1)
    text_only = distillation_loss(fused, features, None, levels, queries, targets,
                                  LossConfig(patch_weight=0.0, rank_weight=0.0, list_weight=0.0))
    assert set(text_only) == {"text", "loss"}
    both = distillation_loss(fused, features, None, levels, queries, targets,
                             LossConfig(text_weight=2.0, patch_weight=0.5, patch_mode="all", rank_weight=0.0,
                                        list_weight=0.0))
    torch.testing.assert_close(both["loss"], 2.0 * both["text"] + 0.5 * both["patch"])
    ranked = distillation_loss(fused, features, None, levels, queries, targets,
                               LossConfig(text_weight=0.5, patch_weight=0.0, rank_weight=3.0, rank_temperature=0.05,
                                          list_weight=0.0))
    assert set(ranked) == {"text", "rank", "loss"}
    torch.testing.assert_close(ranked["rank"], text_ranking_loss(fused @ queries.T, targets, 0.05))
    torch.testing.assert_close(ranked["loss"], 0.5 * ranked["text"] + 3.0 * ranked["rank"])


def test_text_ranking_loss_compares_rankings_not_levels():
    features = _features(5)
    queries = F.normalize(torch.randn(6, DIM, generator=torch.Generator().manual_seed(2)), dim=-1)
    targets = max_patch_similarity(features, queries)  # [5 images, 6 queries]
    # a fused vector whose similarities are the teacher's shifted per query ranks every query's images alike
    fused_sims = targets + torch.linspace(-0.2, 0.2, 6)
    fused = torch.linalg.lstsq(queries, fused_sims.T).solution.T  # fused @ queries.T == fused_sims
    torch.testing.assert_close(fused @ queries.T, fused_sims, atol=1e-4, rtol=0)
    assert text_ranking_loss(fused @ queries.T, targets) < 1e-4
    assert text_matching_loss(fused @ queries.T, targets) > 1.0
    # KL per query, by hand: teacher and student softmax over the images at temperature 0.1
    other = features[:, 1]
    student = torch.log_softmax(other @ queries.T / 0.1, dim=0)
    teacher = torch.softmax(targets / 0.1, dim=0)
    expected = (teacher * (teacher.log() - student)).sum(dim=0).mean()
    torch.testing.assert_close(text_ranking_loss(other @ queries.T, targets, 0.1), expected)


def test_text_correlation_loss_is_one_minus_pearson_per_query():
    generator = torch.Generator().manual_seed(6)
    fused = F.normalize(torch.randn(7, DIM, generator=generator), dim=-1)
    queries = F.normalize(torch.randn(5, DIM, generator=generator), dim=-1)
    targets = torch.rand(7, 5, generator=generator)
    student = (fused @ queries.T).numpy()
    expected = np.mean([1 - np.corrcoef(student[:, q], targets[:, q].numpy())[0, 1] for q in range(5)])
    assert float(text_correlation_loss(fused @ queries.T, targets)) == pytest.approx(expected, abs=1e-5)
    parts = distillation_loss(fused, _features(7), None, None, queries, targets,
                              LossConfig(text_weight=0.0, rank_weight=0.0, corr_weight=2.0, list_weight=0.0))
    assert set(parts) == {"corr", "loss"}
    torch.testing.assert_close(parts["loss"], 2.0 * parts["corr"])


def test_text_listwise_loss_is_the_plackett_luce_likelihood_of_the_teachers_top_places():
    """Per query, the images in the teacher's order; place k costs -log(exp(s_k / t) / sum over the
    places at and below k of exp(s / t)), s the student's similarities: a loop in numpy."""
    generator = torch.Generator().manual_seed(8)
    fused = F.normalize(torch.randn(7, DIM, generator=generator), dim=-1)
    queries = F.normalize(torch.randn(5, DIM, generator=generator), dim=-1)
    targets = torch.rand(7, 5, generator=generator)
    student = (fused @ queries.T).double().numpy() / 0.1
    for depth in (1, 3, 7, 20):
        costs = []
        for q in range(5):
            order = np.argsort(-targets[:, q].numpy())
            for k in range(min(depth, 7)):
                rest = student[order[k:], q]
                costs.append(np.log(np.exp(rest).sum()) - student[order[k], q])
        assert float(text_listwise_loss(fused @ queries.T, targets, 0.1, depth)) == pytest.approx(np.mean(costs), abs=1e-5)
    parts = distillation_loss(fused, _features(7), None, None, queries, targets,
                              LossConfig(text_weight=0.0, rank_weight=0.0, list_weight=2.0, list_depth=3,
                                         rank_temperature=0.1))
    assert set(parts) == {"list", "loss"}
    torch.testing.assert_close(parts["loss"], 2.0 * parts["list"])


def test_text_listwise_loss_scores_the_probability_of_the_teachers_whole_order():
    """With depth = batch, exp(-loss * places) is the probability that the Plackett-Luce model of
    the student's similarities draws the teacher's order: checked against all 24 orders of 4 images
    (they sum to 1 and the loss picks the teacher's)."""
    from itertools import permutations

    generator = torch.Generator().manual_seed(9)
    fused = F.normalize(torch.randn(4, DIM, generator=generator), dim=-1)
    query = F.normalize(torch.randn(1, DIM, generator=generator), dim=-1)
    strength = np.exp((fused @ query.T)[:, 0].double().numpy() / 0.05)

    def probability(order):
        left = list(order)
        p = 1.0
        for image in order:
            p *= strength[image] / strength[left].sum()
            left.remove(image)
        return p

    orders = list(permutations(range(4)))
    assert sum(probability(o) for o in orders) == pytest.approx(1.0)
    teacher_order = (2, 0, 3, 1)
    targets = torch.zeros(4, 1)
    targets[list(teacher_order), 0] = torch.tensor([0.9, 0.7, 0.5, 0.1])
    loss = float(text_listwise_loss(fused @ query.T, targets, 0.05, depth=4))
    assert np.exp(-4 * loss) == pytest.approx(probability(teacher_order), rel=1e-4)


def test_listwise_depth_must_be_positive():
    with pytest.raises(ValueError, match="listwise depth"):
        LossConfig(list_depth=0)


def test_one_unit_vector_meets_the_correlation_term_where_matching_and_ranking_cannot():
    """The teacher's similarities of 6 queries (targets spread far beyond what a unit vector reaches
    in absolute terms), rebuilt up to a per-query affine map by unit vectors: their component in the
    queries' span reproduces targets - mean scaled down, a component orthogonal to it evens the norms."""
    generator = torch.Generator().manual_seed(7)
    queries = F.normalize(torch.randn(6, DIM, generator=generator), dim=-1)
    targets = 3.0 * torch.rand(8, 6, generator=generator)
    span = torch.linalg.pinv(queries) @ (targets - targets.mean(dim=0)).T  # [D, 8]: queries @ span = centred targets
    span = 0.5 * span / span.norm(dim=0).max()
    orthogonal = torch.linalg.svd(queries)[2][-1]  # a unit vector orthogonal to every query
    fused = (span + orthogonal[:, None] * (1 - span.norm(dim=0) ** 2).sqrt()).T
    torch.testing.assert_close(fused.norm(dim=-1), torch.ones(8))
    assert float(text_correlation_loss(fused @ queries.T, targets)) < 1e-5
    assert float(text_ranking_loss(fused @ queries.T, targets)) > 0.1
    assert float(text_matching_loss(fused @ queries.T, targets)) > 1.0


def test_calibrated_text_matching_compares_an_affine_map_of_the_similarities():
    generator = torch.Generator().manual_seed(8)
    fused = F.normalize(torch.randn(5, DIM, generator=generator), dim=-1)
    queries = F.normalize(torch.randn(4, DIM, generator=generator), dim=-1)
    calibration = QueryCalibration(4)
    targets = torch.rand(5, 4, generator=generator)
    # the identity at the start
    torch.testing.assert_close(text_matching_loss(fused @ queries.T, targets, calibration=calibration),
                               text_matching_loss(fused @ queries.T, targets))
    scale, shift = torch.tensor([0.5, 1.0, 2.0, 4.0]), torch.tensor([0.1, -0.2, 0.0, 0.3])
    with torch.no_grad():
        calibration.log_scale.copy_(scale.log())
        calibration.shift.copy_(shift)
    similarities = (fused @ queries.T).numpy()
    expected = 100.0 * np.mean((similarities * scale.numpy() + shift.numpy() - targets.numpy()) ** 2)
    loss = text_matching_loss(fused @ queries.T, targets, calibration=calibration).detach()
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # targets that are such a map of the fused similarities are met exactly; only with config.calibrate
    exact = torch.from_numpy(similarities) * scale + shift
    config = LossConfig(text_weight=1.0, rank_weight=0.0, detail_weight=0.0, calibrate=True)
    met = distillation_loss(fused, _features(5), None, None, queries, exact, config, calibration=calibration)
    assert float(met["text"].detach()) < 1e-9
    ignored = distillation_loss(fused, _features(5), None, None, queries, exact, replace(config, calibrate=False),
                                calibration=calibration)
    assert float(ignored["text"].detach()) > 1e-3


def test_the_trainer_learns_a_calibration_and_resumes_it(tmp_path):
    items = [PatchFeatures(f"toy{i}", f"h{i}", _features(1, seed=i)[0].numpy().astype(np.float16),
                           LEVELS.numpy().astype(np.int16)) for i in range(8)]
    queries = F.normalize(torch.randn(5, DIM, generator=torch.Generator().manual_seed(9)), dim=-1)
    config = TrainConfig(epochs=1, batch_size=4, patience=0, loss=LossConfig(teacher_temperature=0, calibrate=True))
    trainer = Trainer(build_fusion("tiny", DIM), items, items[:4], queries, config, torch.device("cpu"), {})
    trainer.train_epoch(progress=False)
    assert trainer.calibration.log_scale.abs().sum() > 0 and trainer.calibration.shift.abs().sum() > 0
    assert trainer.optimizer.param_groups[1]["weight_decay"] == 0.0
    again = Trainer(build_fusion("tiny", DIM), items, items[:4], queries, config, torch.device("cpu"), {})
    again.load_state(trainer.state())
    assert torch.equal(again.calibration.shift, trainer.calibration.shift)
    plain_max = TrainConfig(loss=LossConfig(teacher_temperature=0))
    assert Trainer(build_fusion("tiny", DIM), items, None, queries, plain_max, torch.device("cpu"), {}).calibration is None


def test_detail_weights_by_hand():
    # 3 images, 2 queries; gain = target - whole per pair
    targets = torch.tensor([[0.30, 0.20], [0.50, 0.20], [0.40, 0.50]])
    whole = torch.tensor([[0.30, 0.10], [0.20, 0.10], [0.30, 0.10]])
    # query 0 gains 0.0, 0.3, 0.1: mean 0.1333, sample std 0.15275 -> z = -0.873, 1.091, -0.218
    # query 1 gains 0.1, 0.1, 0.4: mean 0.2, sample std 0.17321 -> z = -0.577, -0.577, 1.155
    expected = torch.tensor([[1.0, 1.0], [1.0 + 2 * 1.0911, 1.0], [1.0, 1.0 + 2 * 1.1547]])
    torch.testing.assert_close(detail_weights(targets, whole, 2.0), expected, atol=1e-4, rtol=0)
    assert torch.equal(detail_weights(targets, whole, 0.0), torch.ones(3, 2))
    assert torch.equal(detail_weights(targets[:1], whole[:1], 2.0), torch.ones(1, 2))  # one image: nothing stands out
    flat = torch.full((3, 2), 0.5)  # equal gains everywhere: no pair stands out either
    assert torch.equal(detail_weights(flat, whole * 0, 2.0), torch.ones(3, 2))


def test_detail_weighted_text_loss_is_the_weighted_mean_of_pair_errors():
    features = _features(4)
    queries = F.normalize(torch.randn(6, DIM, generator=torch.Generator().manual_seed(3)), dim=-1)
    targets = max_patch_similarity(features, queries)
    fused = features[:, 1]
    weights = torch.rand(4, 6, generator=torch.Generator().manual_seed(4)) + 0.5
    errors = ((fused @ queries.T - targets) ** 2).numpy()
    expected = 100.0 * np.average(errors, weights=weights.numpy())
    parts = distillation_loss(fused, features, None, LEVELS.expand(4, -1), queries, targets,
                              LossConfig(patch_weight=0.0, rank_weight=0.0, detail_weight=1.0),
                              text_pair_weights=weights)
    assert float(parts["text"]) == pytest.approx(expected, rel=1e-5)


def test_trainer_weighs_the_pairs_that_only_small_windows_see():
    items = [PatchFeatures(f"toy{i}", f"h{i}", _features(1, seed=i)[0].numpy().astype(np.float16),
                           LEVELS.numpy().astype(np.int16)) for i in range(6)]
    queries = F.normalize(torch.randn(5, DIM, generator=torch.Generator().manual_seed(5)), dim=-1)
    config = TrainConfig(epochs=1, batch_size=3, patience=0,
                         loss=LossConfig(teacher_temperature=0, patch_weight=0.0, detail_weight=3.0))
    trainer = Trainer(build_fusion("tiny", DIM), items[:4], items[4:], queries, config, torch.device("cpu"), {})
    bank = torch.from_numpy(np.stack([item.data.astype(np.float32) for item in items[:4]]))
    teacher = (bank @ queries.T).amax(dim=1)  # [4, 5] max over the patches
    gain = (teacher - bank[:, 0] @ queries.T).numpy()
    z = (gain - gain.mean(axis=0)) / gain.std(axis=0, ddof=1)
    np.testing.assert_allclose(trainer.train_weights.numpy(), 1 + 3.0 * np.maximum(z, 0), atol=2e-3)
    assert trainer.val_weights.shape == (2, 5)
    plain = TrainConfig(loss=LossConfig(teacher_temperature=0, detail_weight=0.0))
    assert Trainer(build_fusion("tiny", DIM), items[:4], None, queries, plain, torch.device("cpu"), {}).train_weights is None


def test_teacher_levels_max_over_those_levels_only():
    short = LEVELS[:10]  # an image with fewer patches: padded in the bank
    items = [PatchFeatures(f"toy{i}", f"h{i}", _features(1, patches=len(lv), seed=i)[0].numpy().astype(np.float16),
                           lv.numpy().astype(np.int16)) for i, lv in enumerate((LEVELS, short, LEVELS))]
    queries = F.normalize(torch.randn(5, DIM, generator=torch.Generator().manual_seed(5)), dim=-1)
    config = TrainConfig(epochs=1, patience=0,
                         loss=LossConfig(teacher_temperature=0, detail_weight=0.0, teacher_levels=(2, 0)))
    trainer = Trainer(build_fusion("tiny", DIM), items, None, queries, config, torch.device("cpu"), {})
    for i, item in enumerate(items):  # oracle: numpy max over the rows of levels 0 and 2
        rows = item.data.astype(np.float32)[np.isin(item.level_ids, [0, 2])]
        np.testing.assert_allclose(trainer.train_targets[i].numpy(), (rows @ queries.numpy().T).max(axis=0), atol=1e-5)
    plain_max = TrainConfig(loss=LossConfig(teacher_temperature=0))
    everything = Trainer(build_fusion("tiny", DIM), items, None, queries, plain_max, torch.device("cpu"), {})
    all_rows = items[1].data.astype(np.float32)
    np.testing.assert_allclose(everything.train_targets[1].numpy(), (all_rows @ queries.numpy().T).max(axis=0), atol=1e-5)
    only_3 = TrainConfig(loss=LossConfig(teacher_temperature=0, teacher_levels=(0, 3)))
    with pytest.raises(ValueError, match=r"no patch of teacher level 3 \(its levels: \[0, 1, 2\]\)"):
        Trainer(build_fusion("tiny", DIM), items, None, queries, only_3, torch.device("cpu"), {})


@pytest.mark.parametrize("levels", [(), (-1,), (0, 1.5), ("1",)])
def test_teacher_levels_must_be_levels(levels):
    with pytest.raises(ValueError, match="teacher levels must be levels 0, 1, ..."):
        LossConfig(teacher_levels=levels)


def test_teacher_levels_are_kept_sorted_and_unique():
    assert LossConfig(teacher_levels=[5, 0, 4, 5]).teacher_levels == (0, 4, 5)
    assert LossConfig().teacher_levels is None

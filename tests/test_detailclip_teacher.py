"""The calibrated teacher (`detailclip.teacher`, bench method `cc-cal`) against a brute-force log-softmax."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmark.index import ImageIndex
from detailclip.teacher import window_offsets


def unit(*shape, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


# Two images: the first with levels 0, 1, 1, 2 (finest 2), the second with levels 0, 1 (finest 1, as an
# image with a smaller auto cover has).
COUNTS = torch.tensor([4, 2])
LEVELS = torch.tensor([0, 1, 1, 2, 0, 1])


@pytest.mark.parametrize("temperature, penalty", [(3.0, 0.0), (10.0, 0.2)])
def test_scores_are_the_vocabulary_log_softmax_minus_the_level_penalty(temperature, penalty):
    vectors, vocabulary = unit(6, 16, seed=0), unit(5, 16, seed=1)
    index = ImageIndex(vectors, COUNTS, window_offsets(vectors, COUNTS, LEVELS, vocabulary, temperature, penalty), temperature)
    below_finest = torch.tensor([2, 1, 1, 0, 1, 0], dtype=torch.float32)
    log_p = torch.log_softmax(temperature * vocabulary @ vectors.T, dim=0) - penalty * below_finest  # [C, M]
    brute = torch.stack([part.amax(1) for part in log_p.split(COUNTS.tolist(), dim=1)], 1)
    torch.testing.assert_close(index.score(vocabulary), brute)
    outside = unit(1, 16, seed=2)  # a query outside the vocabulary: scored against the vocabulary's normaliser
    normaliser = torch.logsumexp(temperature * vocabulary @ vectors.T, dim=0)
    own = temperature * (outside @ vectors.T)[0] - normaliser - penalty * below_finest
    torch.testing.assert_close(index.score(outside)[0], torch.stack([p.max() for p in own.split(COUNTS.tolist())]))


def test_a_window_like_every_class_gains_nothing():
    """A window equally similar to all classes scores log(1/C) for each, whatever that similarity is; one
    that matches a single class scores it near 0."""
    vocabulary = torch.eye(4)
    hub = F.normalize(torch.ones(1, 4), dim=1)  # cos 0.5 with every class
    specific = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # cos 1 with class 0, 0 with the others
    for window, expected in ((hub, torch.full((4,), -torch.log(torch.tensor(4.0)))), (specific, None)):
        counts, levels = torch.tensor([1]), torch.tensor([0])
        index = ImageIndex(window, counts, window_offsets(window, counts, levels, vocabulary, 50.0, 0.0), 50.0)
        scores = index.score(vocabulary)[:, 0]
        if expected is not None:
            torch.testing.assert_close(scores, expected)
        else:
            assert scores[0] > -1e-6 and bool((scores[1:] < -40).all())


def test_bad_calibration_settings_are_refused():
    vectors = unit(2, 8, seed=3)
    counts, levels = torch.tensor([2]), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="vocabulary"):
        window_offsets(vectors, counts, levels, torch.zeros(0, 8), 3.0, 0.0)
    with pytest.raises(ValueError, match="temperature"):
        window_offsets(vectors, counts, levels, unit(3, 8, seed=4), 0.0, 0.0)
    with pytest.raises(ValueError, match="level_penalty"):
        window_offsets(vectors, counts, levels, unit(3, 8, seed=4), 1.0, -0.1)


def test_index_offsets_and_scale_in_both_scoring_paths():
    vectors, queries = unit(5, 8, seed=5), unit(3, 8, seed=6)
    offsets = torch.linspace(-0.5, 0.5, 5)
    single = ImageIndex(vectors, torch.ones(5, dtype=torch.long), offsets, 2.0)
    torch.testing.assert_close(single.score(queries), 2.0 * queries @ vectors.T - offsets)
    multi = ImageIndex(vectors, torch.tensor([2, 3]), offsets, 2.0)
    expected = (2.0 * queries @ vectors.T - offsets).split([2, 3], dim=1)
    torch.testing.assert_close(multi.score(queries, block=2), torch.stack([e.amax(1) for e in expected], 1))
    with pytest.raises(ValueError, match="offsets"):
        ImageIndex(vectors, torch.tensor([2, 3]), torch.zeros(4))
    with pytest.raises(ValueError, match="scale"):
        ImageIndex(vectors, torch.tensor([2, 3]), None, 0.0)


def test_calibrated_training_targets_rank_as_the_bench_method_on_the_plain_scale():
    """The trainer's calibrated targets of a padded bank: per query, an increasing affine map of the cc-cal
    index's scores (each image alone, unpadded), with the plain max's mean and spread over the images."""
    import numpy as np

    from detailclip.features import PatchFeatures
    from detailclip.fusion import build_fusion
    from detailclip.recipe import LossConfig, TrainConfig
    from detailclip.training.fusion_trainer import FeatureBank, Trainer, teacher_targets

    level_sets = [[0, 1, 1, 1, 1, 2, 2, 2, 2, 2], [0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 2, 2, 2], [0]]
    items = [PatchFeatures(f"img{i}", f"h{i}", unit(len(lv), 16, seed=10 + i).numpy().astype(np.float16), np.array(lv, np.int16))
             for i, lv in enumerate(level_sets)]  # fmt: skip
    queries, vocabulary = unit(3, 16, seed=20), unit(5, 16, seed=21)
    bank = FeatureBank.from_items(items, torch.device("cpu"))
    targets = teacher_targets(bank, queries, calibration=(vocabulary, 2.0, 0.1), chunk=3)
    vectors = torch.cat([item.features for item in items])
    counts = torch.tensor([len(lv) for lv in level_sets])
    levels = torch.cat([item.levels for item in items])
    index = ImageIndex(vectors, counts, window_offsets(vectors, counts, levels, vocabulary, 2.0, 0.1), 2.0)

    def standardised(x):
        return (x - x.mean(0)) / x.std(0)

    torch.testing.assert_close(standardised(targets), standardised(index.score(queries).T), atol=1e-4, rtol=0)
    plain = teacher_targets(bank, queries)
    torch.testing.assert_close(targets.mean(0), plain.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(targets.std(0), plain.std(0), atol=1e-5, rtol=0)
    calibrated = TrainConfig(loss=LossConfig(teacher_temperature=2.0, teacher_level_penalty=0.1))
    trainer = Trainer(build_fusion("tiny", 16), items, items[:2], queries, calibrated, torch.device("cpu"), {}, vocabulary)
    torch.testing.assert_close(trainer.train_targets, targets)
    with pytest.raises(ValueError, match="needs the class vocabulary"):
        Trainer(build_fusion("tiny", 16), items, None, queries, calibrated, torch.device("cpu"), {})
    with pytest.raises(ValueError, match="needs a teacher temperature"):
        LossConfig(teacher_temperature=0, teacher_level_penalty=0.1)

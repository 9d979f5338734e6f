"""Every registered method passes one contract; cross-method identities pin down the shared plumbing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cli_commands.benchmark import METHOD_NAMES
from benchmark.context import BenchContext
from benchmark.methods import create_method, method_names
from benchmark.sources import clevr_ds_source
from tests.benchmark_fixtures import TINY_BACKBONE, make_checkpoint, make_dataset, random_scenes

COVER_K = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("methods")
    data = make_dataset(root / "data", random_scenes(6, seed=1))
    checkpoint = make_checkpoint(root / "fusion.pt", k=COVER_K)
    return data, checkpoint, root


def context(setup, checkpoint=None, cache=True) -> BenchContext:
    data, default_checkpoint, root = setup
    return BenchContext(
        source=clevr_ds_source(data, "test"), backbone_name=TINY_BACKBONE, pretrained="none", cover_k=COVER_K,
        checkpoint=checkpoint or default_checkpoint, cache_dir=root / "cache" if cache else None, progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def ctx(setup):
    return context(setup)


def test_cli_lists_the_registry():
    assert list(METHOD_NAMES) == method_names()


@pytest.mark.parametrize("name", method_names())
def test_method_contract(setup, ctx, name):
    method = create_method(name)
    assert method.name == name and method.summary
    json.dumps(method.settings(ctx))  # part of the run identity: must be JSON
    encoded = method.encode(ctx)
    index = encoded.index
    n, dim = len(ctx.source.images), ctx.backbone().embed_dim
    assert index.n_images == n and index.vectors.shape[1] == dim
    assert bool((index.counts >= 1).all())
    norms = index.vectors.float().norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=2e-3)
    assert 1 <= index.vectors_per_image <= encoded.forward_passes_per_image
    assert encoded.gflops_per_image > 0 and encoded.encode_images_per_s > 0
    text = ctx.class_embeddings(["red cube", "blue sphere"], "plain", encoded.image_size)
    scores = index.score(text)
    bound = index.scale + (0.0 if index.offsets is None else float(index.offsets.abs().max()))  # scale * cos - offset
    assert scores.shape == (2, n) and bool((scores.abs() <= bound + 1e-3).all())
    again = create_method(name).encode(context(setup, cache=False)).index
    torch.testing.assert_close(again.score(text), scores, atol=2e-3, rtol=0)  # seeded and reproducible


def extraction_calls(monkeypatch) -> list[tuple]:
    """(scheme, k) of every detailclip.features.extract_features call from here on."""
    import detailclip.features

    calls = []
    original = detailclip.features.extract_features
    monkeypatch.setattr(detailclip.features, "extract_features",
                        lambda *a, **kw: calls.append((kw["scheme"], kw["k"])) or original(*a, **kw))  # fmt: skip
    return calls


def test_cover_features_are_extracted_once_for_three_methods(setup, monkeypatch):
    calls, fresh = extraction_calls(monkeypatch), context(setup)
    for name in ("cc-mean", "cc-max", "detailclip"):
        create_method(name).encode(fresh)
    assert calls == [("cc", COVER_K)]


def test_a_planned_cover_comes_from_its_magnified_windows(setup, monkeypatch):
    """With cc-fine-cal in the plan, the cc methods read the leading windows of the one cc-fine extraction."""
    calls, fresh = extraction_calls(monkeypatch), context(setup)
    methods = [create_method(name) for name in ("cc-mean", "cc-max", "cc-fine-cal")]
    fresh.plan(method.features_read(fresh) for method in methods)
    encoded = [method.encode(fresh) for method in methods]
    assert calls == [("cc-fine", COVER_K)]
    assert [e.forward_passes_per_image for e in encoded] == [14, 14, 14 + 25]
    text = fresh.class_embeddings(["red cube", "gray cylinder"], "plain")
    alone = create_method("cc-max").encode(context(setup, cache=False)).index.score(text)
    torch.testing.assert_close(encoded[1].index.score(text), alone, atol=2e-3, rtol=0)


@pytest.mark.parametrize("name", method_names())
def test_a_method_reads_the_features_it_declares(setup, monkeypatch, name):
    """features_read names what encode reads, which the call's plan relies on (None: a method that does not say)."""
    calls, fresh, method = extraction_calls(monkeypatch), context(setup), create_method(name)
    read = method.features_read(fresh)
    method.encode(fresh)
    assert read is None or calls == [(read.scheme, read.k)]


def test_cc_max_is_the_max_over_patches_and_clip_is_patch_zero(ctx):
    features = ctx.features("cc", COVER_K)
    text = ctx.class_embeddings(["red cube", "gray cylinder", "cyan sphere"], "plain")
    brute = torch.stack([(text @ torch.from_numpy(np.asarray(f.data, dtype=np.float32)).T).amax(1) for f in features], 1)
    torch.testing.assert_close(create_method("cc-max").encode(ctx).index.score(text), brute)
    clip = create_method("clip").encode(ctx).index.vectors.float()
    patch0 = torch.stack([torch.from_numpy(np.asarray(f.data[0], dtype=np.float32)) for f in features])
    torch.testing.assert_close(clip, patch0, atol=2e-3, rtol=0)


def test_detailclip_with_mean_fusion_equals_cc_mean(setup):
    ctx = context(setup, checkpoint=make_checkpoint(setup[2] / "mean.pt", size="mean", k=COVER_K))
    fused = create_method("detailclip").encode(ctx)
    torch.testing.assert_close(fused.index.vectors, create_method("cc-mean").encode(ctx).index.vectors, atol=1e-5, rtol=0)
    assert fused.forward_passes_per_image == 14  # cc@3: 1 + 4 + 9 patches


def test_cc_cal_with_one_class_is_cc_max_of_the_query_minus_it(ctx, monkeypatch):
    """With one class c in the vocabulary and no level penalty, a window's offset is tau * cos(c, window): cc-cal's
    score of a query q is tau * max over windows of (q - c) . window, cc-max's score of the vector q - c."""
    from benchmark.methods.calibrated import CCCalibrated

    method = CCCalibrated()
    monkeypatch.setattr(method, "level_penalty", 0.0)
    vocabulary = ctx.class_embeddings(["red cube"], "plain")
    monkeypatch.setattr(ctx, "vocabulary", lambda: vocabulary)
    encoded = method.encode(ctx)
    assert encoded.index.vectors_per_image == 14 and encoded.forward_passes_per_image == 14
    torch.testing.assert_close(encoded.index.score(vocabulary), torch.zeros(1, len(ctx.source.images)), atol=1e-5, rtol=0)
    plain = create_method("cc-max").encode(ctx).index
    text = ctx.class_embeddings(["gray cylinder"], "plain")
    torch.testing.assert_close(encoded.index.score(text) / method.temperature, plain.score(text - vocabulary), atol=1e-4, rtol=0)


def test_cc_fine_cal_adds_the_magnified_windows_to_cc_cal(ctx):
    """cc-fine-cal scores cc-cal's windows (cc@3: 14) and the finest of cc@5 (25) in the same finest level: a
    window's score does not depend on the others, so it is at least cc-cal's everywhere."""
    fine, cover = create_method("cc-fine-cal").encode(ctx), create_method("cc-cal").encode(ctx)
    assert fine.index.vectors_per_image == fine.forward_passes_per_image == 14 + 25
    text = ctx.class_embeddings(["red cube", "gray cylinder", "cyan sphere"], "plain")
    gain = fine.index.score(text) - cover.index.score(text)
    assert bool((gain >= -1e-4).all()) and bool((gain > 1e-3).any())


def test_cc_cal_needs_the_data_s_classes(tmp_path):
    from PIL import Image

    from benchmark.methods.calibrated import VocabularyError
    from benchmark.search import folder_source

    Image.new("RGB", (32, 32), "gray").save(tmp_path / "a.png")
    source, _ = folder_source(tmp_path)  # an image folder names no classes
    ctx = BenchContext(source=source, backbone_name=TINY_BACKBONE, pretrained="none", cover_k=COVER_K, progress=False)
    with pytest.raises(VocabularyError, match="scores windows against the data's classes"):
        create_method("cc-cal").encode(ctx)


def test_costs_of_patch_schemes(ctx):
    assert create_method("cc-max").encode(ctx).index.vectors_per_image == 14
    assert create_method("grid-max").encode(ctx).index.vectors_per_image == 1 + COVER_K**2
    assert create_method("s2").encode(ctx).forward_passes_per_image == 1 + 4 + 9
    visible = [sum(not o.ignore for o in image.objects) for image in ctx.source.images]
    assert create_method("oracle-crop").encode(ctx).index.counts.tolist() == [1 + v for v in visible]
    hires = create_method("clip-hires")
    assert hires.settings(ctx)["image_size"] == 2 * ctx.backbone().image_size
    assert hires.encode(ctx).gflops_per_image > create_method("clip").encode(ctx).gflops_per_image

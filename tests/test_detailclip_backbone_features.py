"""Backbones (tiny random open_clip config) and the patch-feature cache."""

import numpy as np
import pytest
import torch
from PIL import Image

from detailclip.backbones import BackboneError, load_backbone, pretrained_id
from detailclip.features import extract_features
from detailclip.text import resolve_templates

TINY = "tiny-clip-vit-p8-32"


@pytest.fixture(scope="module")
def backbone():
    return load_backbone(TINY, "none", device="cpu", seed=3)


@pytest.fixture
def image_paths(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(96, 128), (96, 128), (101, 77), (96, 128), (64, 64)]):
        path = tmp_path / "images" / f"img{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_random_backbone_is_seeded_and_marked_untrained(backbone):
    assert backbone.untrained and backbone.image_size == 32 and backbone.embed_dim == 32
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    features = backbone.encode_images(pixels)
    assert features.dtype == torch.float32 and features.shape == (3, 32)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(load_backbone(TINY, "none", device="cpu", seed=3).encode_images(pixels), features)
    assert not torch.allclose(load_backbone(TINY, "none", device="cpu", seed=4).encode_images(pixels), features)


def test_text_and_class_embeddings(backbone):
    prompts = backbone.prompt_embeddings(["red cube", "blue sphere"], "short")
    classes = backbone.class_embeddings(["red cube", "blue sphere"], "short")
    assert prompts.shape == (2, 7, 32) and classes.shape == (2, 32)
    torch.testing.assert_close(classes, torch.nn.functional.normalize(prompts.mean(1), dim=-1))
    first_prompt = resolve_templates("short")[0].format("red cube")
    torch.testing.assert_close(backbone.encode_text([first_prompt])[0], prompts[0, 0])
    assert backbone.class_embeddings(["red cube"], "openai80").shape == (1, 32)


def test_forced_image_size_and_flops():
    big = load_backbone(TINY, "none", device="cpu", image_size=64)
    assert big.image_size == 64 and big.encode_images(torch.zeros(1, 3, 64, 64)).shape == (1, 32)
    assert big.gflops_per_image() > load_backbone(TINY, "none", device="cpu").gflops_per_image() > 0


def test_unknown_backbone_and_tag():
    with pytest.raises(BackboneError, match="unknown open_clip architecture"):
        load_backbone("no-such-net")
    with pytest.raises(BackboneError, match="neither a file nor a pretrained tag"):
        load_backbone(TINY, "no-such-tag")


def test_local_weights_are_identified_by_content(tmp_path):
    first = tmp_path / "a" / "weights.safetensors"
    copy = tmp_path / "b" / "weights.safetensors"
    for path in (first, copy):
        path.parent.mkdir()
        path.write_bytes(b"same bytes")
    assert pretrained_id(str(first)) == pretrained_id(str(copy)) != pretrained_id("none") == "none"
    assert pretrained_id(str(first)).startswith("weights-")
    copy.write_bytes(b"other bytes")
    assert pretrained_id(str(first)) != pretrained_id(str(copy))
    assert pretrained_id("laion2b_s34b_b79k") == "laion2b_s34b_b79k"  # an open_clip tag names itself


def test_features_are_cached_and_hit_on_second_run(backbone, image_paths, tmp_path):
    cache = tmp_path / "cache"
    first = extract_features(backbone, image_paths, scheme="cc", k=4, cache_dir=cache, batch_size=2, progress=False)
    assert [f.num_patches for f in first] == [30] * 5
    assert all(f.levels[0] == 0 and f.data.dtype == np.float16 for f in first)
    entries = sorted(cache.glob("*/*.feat"))
    assert len(entries) == 5
    calls = []
    original = backbone.encode_images
    backbone.encode_images = lambda pixels: calls.append(len(pixels)) or original(pixels)
    try:
        second = extract_features(backbone, image_paths, scheme="cc", k=4, cache_dir=cache, progress=False)
    finally:
        del backbone.encode_images
    assert calls == []
    assert not second[0].data.flags.writeable  # read from the cache
    for a, b in zip(first, second):
        torch.testing.assert_close(a.features, b.features)
        assert a.image_hash == b.image_hash


def test_cache_resumes_and_matches_uncached(backbone, image_paths, tmp_path):
    cache = tmp_path / "cache"
    extract_features(backbone, image_paths[:2], scheme="grid", k=3, cache_dir=cache, progress=False)
    calls = []
    original = backbone.encode_images
    backbone.encode_images = lambda pixels: calls.append(len(pixels)) or original(pixels)
    try:
        cached = extract_features(backbone, image_paths, scheme="grid", k=3, cache_dir=cache, batch_size=8,
                                  progress=False)
    finally:
        del backbone.encode_images
    assert calls == [3 * 10]  # only the three new images, 1 + 3 x 3 patches each
    fresh = extract_features(backbone, image_paths, scheme="grid", k=3, batch_size=1, progress=False)
    for a, b in zip(cached, fresh):
        torch.testing.assert_close(a.features, b.features, atol=2e-3, rtol=0)
        torch.testing.assert_close(a.features.norm(dim=-1), torch.ones(a.num_patches), atol=2e-3, rtol=0)


def test_object_scheme_keys_on_boxes(backbone, image_paths, tmp_path):
    boxes = [[[10, 10, 20, 20]], [], [[0, 0, 5, 5], [30, 30, 10, 10]], [[1, 1, 2, 2]], [[0, 0, 64, 64]]]
    items = extract_features(backbone, image_paths, scheme="objects", cache_dir=tmp_path / "c", object_bboxes=boxes,
                             progress=False)
    assert [f.num_patches for f in items] == [2, 1, 3, 2, 2]
    assert items[0].image_hash != items[1].image_hash

"""Large images (issue #30 item 2): streamed cutting and encoding equal to the one-shot path, bounded
look-ahead and fusion batches, a fusion over a large cover without its attention scores in memory, and
an 8960 px image encoded in under 4 GiB."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detailclip.backbones import load_backbone
from detailclip.cover import scheme_boxes
from detailclip.encode import ATTENTION_BUDGET, fusion_batches
from detailclip.features import PIXEL_BUDGET, PatchFeatures, _prefetch, extract_features
from detailclip.patch_encoder import encode_patches
from detailclip.patches import extract_patches, window_batches
from measure.peak_rss import run_measured
from tests.benchmark_fixtures import TINY_BACKBONE, make_checkpoint

ROOT = Path(__file__).resolve().parents[1]
GiB = 2**30


@pytest.fixture(scope="module")
def backbone():
    return load_backbone(TINY_BACKBONE, "none", device="cpu", batch_size=7)  # batches cut across images and mip levels


def _images():
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator) for h, w in ((97, 131), (64, 80))]


def test_window_batches_are_bounded_and_equal_the_one_shot_cut(backbone):
    images = _images()
    boxes = [scheme_boxes("cc", 97, 131, 4)[0], scheme_boxes("cc", 64, 80, 3)[0].flip(0)]
    one_shot = extract_patches(images, boxes, 32, backbone.mean, backbone.std)
    batches = list(window_batches(images, boxes, 32, backbone.mean, backbone.std, batch=5))
    assert [len(b) for b in batches[:-1]] == [5] * (len(batches) - 1) and 1 <= len(batches[-1]) <= 5
    assert torch.equal(torch.cat(batches), one_shot) and len(one_shot) == 30 + 14


def test_streamed_encode_equals_the_one_shot_encode(backbone, tmp_path):
    images = _images()
    boxes = [scheme_boxes("cc", 97, 131, 4)[0], scheme_boxes("cc", 64, 80, 3)[0]]
    one_shot = backbone.encode_images(extract_patches(images, boxes, backbone.image_size, backbone.mean, backbone.std))
    assert torch.equal(encode_patches(backbone, images, boxes), one_shot)
    path = tmp_path / "small.png"  # the file path: read, decoded, cut and encoded streamed, stored as fp16
    Image.fromarray(images[0].permute(1, 2, 0).numpy()).save(path)
    features = extract_features(backbone, [path], k=4, progress=False)[0]
    assert np.array_equal(features.data, one_shot[:30].to(torch.float16).numpy())


@pytest.mark.parametrize("weight, most", [(PIXEL_BUDGET // 3 + 1, 1), (PIXEL_BUDGET + 1, 0), (1, 7)])
def test_look_ahead_holds_at_most_the_pixel_budget(weight, most):
    read, ahead = [], []
    with ThreadPoolExecutor(2) as pool:
        for n, (result, cost) in enumerate(_prefetch(pool, lambda i: read.append(i) or i, range(12), 8, lambda i: weight)):
            assert result == n and cost == weight
            ahead.append(len(read) - n - 1)  # read beyond the one in hand
    assert max(ahead) <= most and sorted(read) == list(range(12))


def test_fusion_batches_keep_attention_within_budget():
    def items(*counts):
        return [PatchFeatures("x", "h", np.zeros((c, 2), np.float16), np.zeros(c, np.int16)) for c in counts]

    assert [len(b) for b in fusion_batches(items(*[166] * 300), 256)] == [256, 44]
    assert [len(b) for b in fusion_batches(items(10286, 10286, 166, 166), 256)] == [1, 1, 2]
    big = int(ATTENTION_BUDGET**0.5) + 1  # one alone is over the budget: it still goes, alone
    assert [len(b) for b in fusion_batches(items(166, big, 166), 256)] == [1, 1, 1]


def test_fusing_a_large_cover_does_not_hold_its_attention_scores(tmp_path):
    """20,000 windows (an 8960 px `cc-fine` cover has 24,686) through a 2-head fusion in eval mode without
    gradients: its 2 x 20,000^2 fp32 attention scores would be 3.2 GB; the fusion stays far below that."""
    script = tmp_path / "fuse_large_cover.py"
    script.write_text("import torch\n"
                      "from detailclip.fusion import build_fusion\n"
                      "model = build_fusion('tiny', 32).eval()\n"
                      "with torch.no_grad():\n"
                      "    assert model(torch.randn(1, 20_000, 32)).shape == (1, 32)\n")
    run = run_measured([str(script)], cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert 0.1 * GiB < run.peak_rss_bytes < 1.5 * GiB, f"peak RSS {run.peak_rss_bytes / GiB:.2f} GiB"


def test_encoding_an_8960_px_image_stays_under_4_gib(tmp_path):
    side = 8960
    ramp = np.arange(side, dtype=np.uint8)
    pixels = np.empty((side, side, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = ramp[None, :], ramp[:, None], 128
    (tmp_path / "images").mkdir()
    Image.fromarray(pixels).save(tmp_path / "images" / "big.jpg", quality=90)
    del pixels
    checkpoint = make_checkpoint(tmp_path / "fusion.pt")
    out = tmp_path / "vectors.npz"
    run = run_measured([str(ROOT / "cli.py"), "encode", "--checkpoint", str(checkpoint), "--images", str(tmp_path / "images"),
                        "--out", str(out), "--cover-k", "10", "--cache-dir", "none", "--quiet"], cwd=ROOT)  # fmt: skip
    assert run.returncode == 0, run.stderr
    with np.load(out) as z:
        assert z["vectors"].shape == (1, 32)
    assert 0.3 * GiB < run.peak_rss_bytes < 4 * GiB, f"peak RSS {run.peak_rss_bytes / GiB:.2f} GiB"

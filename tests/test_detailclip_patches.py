"""Batched patch cutting against plain slicing + interpolate."""

import pytest
import torch
import torch.nn.functional as F

from detailclip.cover import scheme_boxes
from detailclip.patches import extract_patches

MEAN, STD = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)


def _normalise(x):
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


@pytest.fixture
def images():
    return torch.rand(2, 3, 97, 131, generator=torch.Generator().manual_seed(0))


def test_bilinear_equals_sliced_interpolate(images):
    boxes = [torch.tensor([[0.0, 0, 131, 97], [3, 5, 67, 45], [10, 20, 30, 40]]), torch.tensor([[50.0, 1, 130, 96]])]
    patches = extract_patches(images, boxes, 16, MEAN, STD, antialias=False)
    assert patches.shape == (4, 3, 16, 16)
    expected = [F.interpolate(images[i:i + 1, :, y0:y1, x0:x1], size=(16, 16), mode="bilinear", align_corners=False)
                for i, b in enumerate(boxes) for x0, y0, x1, y1 in b.long().tolist()]
    torch.testing.assert_close(patches, _normalise(torch.cat(expected)), atol=1e-5, rtol=0)


def test_antialias_equals_area_for_power_of_two_boxes(images):
    boxes = [torch.tensor([[4.0, 8, 68, 72], [1, 1, 17, 17]]), torch.tensor([[32.0, 0, 96, 32]])]
    patches = extract_patches(images, boxes, 16, MEAN, STD, antialias=True)
    expected = [F.interpolate(images[i:i + 1, :, y0:y1, x0:x1], size=(16, 16), mode="area")
                for i, b in enumerate(boxes) for x0, y0, x1, y1 in b.long().tolist()]
    torch.testing.assert_close(patches, _normalise(torch.cat(expected)), atol=1e-5, rtol=0)


def test_complete_cover_batch_keeps_box_order(images):
    boxes, _ = scheme_boxes("cc", 97, 131, k=4)
    batched = extract_patches(images, [boxes, boxes], 24, MEAN, STD)
    one = extract_patches(images[1:], [boxes], 24, MEAN, STD)
    assert batched.shape == (2 * len(boxes), 3, 24, 24)
    torch.testing.assert_close(batched[len(boxes):], one)
    reversed_order = extract_patches(images[1:], [boxes.flip(0)], 24, MEAN, STD)
    torch.testing.assert_close(reversed_order, one.flip(0))


def test_bad_input(images):
    with pytest.raises(ValueError, match="box sets"):
        extract_patches(images, [torch.zeros(1, 4)], 16, MEAN, STD)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        extract_patches(images[:, :1], [torch.zeros(1, 4)] * 2, 16, MEAN, STD)

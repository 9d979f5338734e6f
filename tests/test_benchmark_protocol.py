"""The retrieval protocol on hand-made scenes with known answers; bucket parsing and assignment."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.buckets import Bucket, assign_buckets, default_buckets, parse_buckets
from benchmark.protocol import Protocol
from benchmark.sources import clevr_ds_source
from clevr_ds.dataset import DatasetError
from tests.benchmark_fixtures import make_dataset, obj


def test_default_buckets_split_one_range_log_evenly():
    buckets = default_buckets("0.01-0.1")
    edges = [buckets[0].lo] + [b.hi for b in buckets]
    assert edges == pytest.approx([0.01, 0.01 * 10 ** (1 / 3), 0.01 * 10 ** (2 / 3), 0.1])
    assert [b.name for b in buckets] == ["0.01-0.0215", "0.0215-0.0464", "0.0464-0.1"]


def test_default_buckets_of_several_ranges_are_the_ranges():
    assert default_buckets("0.01-0.02,0.05-0.1") == [Bucket(0.01, 0.02), Bucket(0.05, 0.1)]


def test_parse_buckets():
    assert parse_buckets("0.01,0.02,0.05,0.1") == [Bucket(0.01, 0.02), Bucket(0.02, 0.05), Bucket(0.05, 0.1)]
    assert parse_buckets("0.01-0.02,0.05-0.1") == [Bucket(0.01, 0.02), Bucket(0.05, 0.1)]
    for bad in ("0.1,0.01", "0.05", "a,b", "0.01-0.05,0.02-0.1", "0,0.5", "0.5,2"):
        with pytest.raises(ValueError):
            parse_buckets(bad)


def test_assign_buckets_edges_clipping_and_gaps():
    buckets = [Bucket(0.01, 0.02), Bucket(0.02, 0.05), Bucket(0.08, 0.1)]
    scales = np.array([0.005, 0.01, 0.0199, 0.02, 0.049, 0.06, 0.08, 0.1, 0.3, np.nan])
    np.testing.assert_array_equal(assign_buckets(scales, buckets), [0, 0, 0, 1, 1, -1, 2, 2, 2, -1])


CLASSES = ("red cube", "blue sphere", "gray cylinder")
PROTOCOL = Protocol(CLASSES, (Bucket(0.01, 0.03), Bucket(0.03, 0.1)), min_visible_pixels=20)

# image -> objects; expected labels per class: (overall, bucket small, bucket large)
SCENES = [
    [obj("red cube", 0.02), obj("blue sphere", 0.05)],
    [obj("red cube", 0.02), obj("red cube", 0.06)],  # largest red cube decides: large
    [obj("red cube", 0.05, visible_pixels=10)],  # red cube below the threshold only: left out
    [obj("blue sphere", 0.02, visible=False, visible_pixels=50)],  # not visible: left out
    [obj("gray cylinder", 0.099), obj("red cube", 0.06, visible_pixels=5), obj("red cube", 0.015)],
    [],
]
EXPECTED = {  # class: rows (overall, small, large) over the 6 images
    "red cube": [[1, 1, -1, 0, 1, 0], [1, -1, -1, 0, 1, 0], [-1, 1, -1, 0, -1, 0]],
    "blue sphere": [[1, 0, 0, -1, 0, 0], [-1, 0, 0, -1, 0, 0], [1, 0, 0, -1, 0, 0]],
    "gray cylinder": [[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, -1, 0], [0, 0, 0, 0, 1, 0]],
}


def test_relevance_on_a_hand_made_dataset(tmp_path):
    root = make_dataset(tmp_path, SCENES)
    rel = PROTOCOL.relevance(clevr_ds_source(root, "test").images)
    for q, cls in enumerate(CLASSES):
        overall, small, large = EXPECTED[cls]
        np.testing.assert_array_equal(rel.overall[q], overall, err_msg=cls)
        np.testing.assert_array_equal(rel.per_bucket[0, q], small, err_msg=cls)
        np.testing.assert_array_equal(rel.per_bucket[1, q], large, err_msg=cls)
    assert rel.largest_scale[0, 1] == 0.06 and rel.largest_scale[0, 4] == 0.015
    assert math.isnan(rel.largest_scale[0, 2])


def test_threshold_zero_keeps_every_visible_object(tmp_path):
    root = make_dataset(tmp_path, SCENES)
    rel = Protocol(CLASSES, PROTOCOL.buckets, 0).relevance(clevr_ds_source(root, "test").images)
    assert rel.overall[0, 2] == 1 and rel.overall[1, 3] == -1  # sub-threshold counts, invisible does not


def test_unknown_class_is_a_dataset_error(tmp_path):
    root = make_dataset(tmp_path, [[obj("red cube", 0.02)]])
    with pytest.raises(DatasetError, match="not in the vocabulary"):
        Protocol(("blue cube",), PROTOCOL.buckets).relevance(clevr_ds_source(root, "test").images)


def test_settings_record_everything_that_shapes_the_labels():
    settings = PROTOCOL.settings()
    assert settings["buckets"] == [[0.01, 0.03], [0.03, 0.1]]
    assert settings["min_visible_pixels"] == 20 and settings["classes"] == list(CLASSES)

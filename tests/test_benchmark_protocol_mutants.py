"""benchmark.protocol and benchmark.buckets boundaries (issue #15 item 5: mutation testing). Oracle: the rules of the
module docstring ([lo, hi) buckets with the last closed, edges in (0, 1], presence = not ignored
and area >= threshold, the largest present instance decides the bucket) applied by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.buckets import (DEFAULT_BUCKETS_PER_RANGE, Bucket, assign_buckets, buckets_from_edges, default_buckets,
                               log_buckets, parse_buckets)  # fmt: skip
from benchmark.protocol import Protocol
from benchmark.sources import SourceImage, SourceObject


def test_bucket_names_use_three_significant_digits():
    assert Bucket(0.012345, 0.1).name == "0.0123-0.1" and Bucket(0.5, 1.0).name == "0.5-1"


def test_edges_in_zero_one_and_increasing():
    assert buckets_from_edges([0.5, 1]) == [Bucket(0.5, 1.0)]
    assert buckets_from_edges(["0.1", 0.2, 0.3]) == [Bucket(0.1, 0.2), Bucket(0.2, 0.3)]
    for bad in ([0.5], [], [0, 0.5], [0.5, 1.01], [0.2, 0.2], [0.1, 0.3, 0.2], [-0.1, 0.5]):
        with pytest.raises(ValueError, match=r"must be at least two increasing numbers in \(0, 1\]$"):
            buckets_from_edges(bad)


def test_parse_buckets_ranges_may_touch_but_not_overlap():
    assert parse_buckets("0.01-0.02,0.02-0.05") == [Bucket(0.01, 0.02), Bucket(0.02, 0.05)]
    with pytest.raises(ValueError, match=r"^bucket ranges '0.01-0.03,0.02-0.05' must be increasing and must not overlap$"):
        parse_buckets("0.01-0.03,0.02-0.05")
    with pytest.raises(ValueError, match=r"must be increasing"):
        parse_buckets("0.05-0.1,0.01-0.02")
    with pytest.raises(ValueError, match=r"^malformed buckets '0.1,x'; expected edges like 0.01,0.02,0.05,0.1$"):
        parse_buckets("0.1,x")
    assert parse_buckets(" 0.1 , 0.5 ") == [Bucket(0.1, 0.5)]


def test_log_buckets_and_defaults():
    assert DEFAULT_BUCKETS_PER_RANGE == 3
    assert log_buckets(0.01, 1.0, 2) == [Bucket(0.01, pytest.approx(0.1)), Bucket(pytest.approx(0.1), 1.0)]
    assert log_buckets(0.2, 0.4, 1) == [Bucket(0.2, 0.4)]
    four = log_buckets(0.0001, 1.0, 4)
    assert [b.hi for b in four] == pytest.approx([0.001, 0.01, 0.1, 1.0])
    assert len(log_buckets(0.1, 0.9)) == 3 and len(default_buckets("0.1-0.9")) == 3
    assert default_buckets("0.01-1", 2)[0].hi == pytest.approx(0.1)
    assert default_buckets("0.01-0.02,0.02-0.05", 7) == [Bucket(0.01, 0.02), Bucket(0.02, 0.05)]


def test_assign_buckets_half_open_with_the_last_closed():
    buckets = [Bucket(0.1, 0.2), Bucket(0.2, 0.4)]
    got = assign_buckets(np.array([0.1, 0.19999, 0.2, 0.39999, 0.4, 0.9, 0.01, np.nan]), buckets)
    assert got.tolist() == [0, 0, 1, 1, 1, 1, 0, -1] and got.dtype == np.int64
    assert assign_buckets(np.array([[0.15], [0.3]]), buckets).tolist() == [[0], [1]]
    assert assign_buckets([0.5], [Bucket(0.1, 0.5)]).tolist() == [0]


def _obj(cls, scale, area=100.0, ignore=False):
    return SourceObject(cls, (0.0, 0.0, 1.0, 1.0), area, scale, ignore)


def test_presence_threshold_is_inclusive_and_ignored_objects_never_count():
    p = Protocol(("a",), (Bucket(0.1, 0.5),), min_visible_pixels=20)
    assert p.is_present(_obj("a", 0.2, area=20)) and not p.is_present(_obj("a", 0.2, area=19.5))
    assert not p.is_present(_obj("a", 0.2, area=500, ignore=True))
    assert Protocol(("a",), ()).min_visible_pixels == 0 and Protocol(("a",), ()).is_present(_obj("a", 0.2, area=0))


def test_largest_present_instance_decides_and_settings_name_the_buckets():
    buckets = (Bucket(0.1, 0.2), Bucket(0.2, 0.5))
    p = Protocol(("a", "b"), buckets, min_visible_pixels=10)
    images = [
        SourceImage(None, "0", 10, 10, (_obj("a", 0.15), _obj("a", 0.3, area=5), _obj("a", 0.12))),  # 0.3 too small
        SourceImage(None, "1", 10, 10, (_obj("a", 0.12), _obj("a", 0.3), _obj("b", 0.4, ignore=True))),
        SourceImage(None, "2", 10, 10, ()),
    ]
    rel = p.relevance(images)
    assert rel.classes == ["a", "b"] and rel.buckets == list(buckets)
    assert rel.overall.dtype == np.int8 and rel.per_bucket.shape == (2, 2, 3)
    assert rel.overall.tolist() == [[1, 1, 0], [0, -1, 0]]
    assert rel.per_bucket[0].tolist() == [[1, -1, 0], [0, -1, 0]]
    assert rel.per_bucket[1].tolist() == [[-1, 1, 0], [0, -1, 0]]
    assert rel.largest_scale[0, :2].tolist() == [0.15, 0.3] and math.isnan(rel.largest_scale[1, 1])
    assert p.settings() == {"classes": ["a", "b"], "buckets": [[0.1, 0.2], [0.2, 0.5]], "bucket_names": ["0.1-0.2", "0.2-0.5"],
                            "min_visible_pixels": 10}  # fmt: skip


def test_bucket_labels_are_int8_like_the_overall_labels():
    # Relevance documents per_bucket as [B, Q, N] int8 (1 / 0 / -1): a float array would double the
    # memory of large runs and change what np.savez stores with --save-scores.
    p = Protocol(("a", "b"), (Bucket(0.1, 0.2), Bucket(0.2, 0.5)))
    rel = p.relevance([SourceImage(None, "0", 10, 10, (_obj("a", 0.3), _obj("b", 0.3, ignore=True)))])
    assert rel.per_bucket.dtype == np.int8 and rel.overall.dtype == np.int8
    assert rel.per_bucket[:, :, 0].tolist() == [[-1, -1], [1, -1]]  # a: in bucket 1 only; b: only ignored

"""Property-based tests (hypothesis, derandomised) of the pure modules, each against an independent oracle.

scale specs (clevr_ds.scales), Complete Cover (detailclip.cover), the protocol's bucket labels
(benchmark.protocol), retrieval metrics with ties (benchmark.metrics vs scikit-learn) and the COCO
export round trip (clevr_ds.export + pycocotools).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.test_project_oracles import oracle_query

FAST = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- scale specs
# A valid bound: 1..6 significant digits, written in one of the spellings the grammar allows.
_mantissa = st.integers(1, 999_999)
_bound = st.tuples(_mantissa, st.integers(0, 6)).map(lambda t: t[0] / 10 ** (len(str(t[0])) + t[1]))


def _spell(value: float, style: int) -> str:
    text = f"{value:.12g}" if style != 2 else f"{value:.6e}"
    if style == 1 and text.startswith("0."):
        text = text[1:]  # ".05"
    return text


@st.composite
def valid_specs(draw):
    n = draw(st.integers(1, 4))
    ranges, parts = [], []
    for _ in range(n):
        a, b = draw(_bound), draw(_bound)
        assume(a != b and float(_spell(min(a, b), 0)) != float(_spell(max(a, b), 0)))
        lo, hi = min(a, b), max(a, b)
        s_lo, s_hi = (_spell(v, draw(st.integers(0, 2))) for v in (lo, hi))
        pad = draw(st.sampled_from(["", " ", "  "]))
        parts.append(f"{pad}{s_lo}{pad}-{pad}{s_hi}{pad}")
        ranges.append((float(s_lo), float(s_hi)))
    return ",".join(parts), ranges


@FAST
@given(valid_specs())
def test_every_valid_spec_parses_and_round_trips(case):
    from clevr_ds.scales import format_scales, parse_scales, range_for_image

    spec, expected = case
    parsed = parse_scales(spec)
    assert [(r.lo, r.hi) for r in parsed] == expected  # exactly the numbers written
    again = parse_scales(format_scales(parsed))
    assert [(r.lo, r.hi) for r in again] == expected  # <= 6 significant digits survive formatting
    for i in range(10):
        assert range_for_image(parsed, i) == parsed[i % len(parsed)]


def _one_line_value_error(spec):
    from clevr_ds.scales import parse_scales

    with pytest.raises(ValueError) as info:
        parse_scales(spec)
    message = str(info.value)
    assert message and "\n" not in message and "\r" not in message
    return message


_valid_part = st.tuples(_bound, _bound).filter(lambda t: t[0] < t[1]).map(lambda t: f"{t[0]:g}-{t[1]:g}")
_bad_part = st.one_of(
    st.tuples(_bound, _bound).filter(lambda t: t[0] >= t[1]).map(lambda t: f"{t[0]:g}-{t[1]:g}"),  # A >= B
    st.floats(1.0001, 1e6).map(lambda v: f"0.1-{v:g}"),  # beyond 1
    st.just("0-0.5"), st.just("0.0-0.1"),  # zero
    st.just("-0.1-0.2"), st.just("0.1--0.2"),  # signs
    st.just(""), st.just(" "), st.just("0.1"), st.just("0.1-"), st.just("-0.1"), st.just("0.1-0.2-0.3"),
    st.just("1e-0.5-0.9"), st.just("nan-0.5"), st.just("0.1-inf"), st.just("0,1-0,2"),
    st.text(alphabet="abcxyz_;:/ \t\n%", min_size=1, max_size=6),
)


@FAST
@given(st.lists(_valid_part, max_size=3), _bad_part, st.lists(_valid_part, max_size=3))
def test_every_invalid_spec_gives_one_value_error_with_one_line(before, bad, after):
    _one_line_value_error(",".join([*before, bad, *after]))


@FAST
@given(st.text(alphabet="0123456789.-,eE +", max_size=20))
def test_any_text_parses_to_valid_ranges_or_one_line_error(spec):
    from clevr_ds.scales import parse_scales

    try:
        ranges = parse_scales(spec)
    except ValueError as e:
        assert "\n" not in str(e)
        return
    assert ranges and all(0 < r.lo < r.hi <= 1 for r in ranges)
    assert len(ranges) == spec.count(",") + 1


def test_seven_digit_scales_survive_the_recorded_config():
    from clevr_ds.sampling import SceneConfig, config_from_dict, config_to_dict
    from clevr_ds.scales import format_scales, parse_scales

    cfg = SceneConfig(split="test", scales=tuple(parse_scales("0.01234567-0.1")), width=64, height=64)
    assert config_from_dict(json.loads(json.dumps(config_to_dict(cfg)))) == cfg
    assert parse_scales(format_scales(parse_scales("0.12345651-0.12345659")))


# --------------------------------------------------------------------------- Complete Cover
COUNT_TABLE = {  # /work/shared/notes/method.md: windows per kept level
    1: [1], 2: [1, 4], 3: [1, 4, 9], 4: [1, 4, 9, 16], 5: [1, 4, 9, 25], 6: [1, 4, 9, 16, 36],
    7: [1, 4, 9, 16, 49], 8: [1, 4, 9, 25, 64], 9: [1, 4, 9, 16, 25, 81], 10: [1, 4, 9, 16, 36, 100],
    11: [1, 4, 9, 16, 36, 121], 12: [1, 4, 9, 16, 25, 49, 144], 13: [1, 4, 9, 16, 25, 49, 169],
    14: [1, 4, 9, 16, 25, 64, 196], 15: [1, 4, 9, 16, 36, 64, 225],
}

# Coverage bound B_k: the smallest window (in cells) holding an object is at most
# B_k * max(1, object width / cell width, object height / cell height). Measured exhaustively in 1-D
# (every interval of every length at every position, square frames with cells of 1..40, 50, 64,
# 100 and 224 px): max ratio 1, 2, 2.97, 3, 4.93, 3.95, 6.88, 5, 4.91, 5.89, 5.89, 4.91, 4.91, 4.91,
# 7.38 for k = 1..15. The worst case is an object just over one cell straddling the boundary of
# two windows of the coarser levels (e.g. k = 10: 228 px at c = 224 needs the 6-cell window, ratio
# 6c / (c + 4) -> 6); B_k below is that limit for large cells. Trivially B_k <= k (the whole image).
COVER_BOUND = {1: 1, 2: 2, 3: 3, 4: 3, 5: 5, 6: 4, 7: 7, 8: 5, 9: 5, 10: 6, 11: 6, 12: 5, 13: 5, 14: 5, 15: 7.5}


def _notes_starts(length: int, side: int, cell: int) -> list[int]:
    """Window starts along one axis as the method notes state them: 0, t, 2t, ... with
    t = floor(s - (s - c) / c), the last window clamped to end at the border."""
    step = math.floor(side - (side - cell) / cell)
    starts, start = [], 0
    while start + side < length:
        starts.append(start)
        start += step
    return starts + [length - side]


def _notes_kept_cells(k: int, cell: int = 1000) -> list[int]:
    """Window sides (in cells) of the kept levels, from the notes' rule on a large image: levels with
    the same window count collapse onto the last (smallest) one."""
    kept: list[tuple[int, int]] = []  # (count, cells)
    for cells in range(k, 0, -1):
        count = len(_notes_starts(k * cell, cells * cell, cell))
        if kept and kept[-1][0] == count:
            kept[-1] = (count, cells)
        else:
            kept.append((count, cells))
    return [cells for _, cells in kept]


@pytest.mark.parametrize("k", sorted(COUNT_TABLE))
def test_notes_rule_reproduces_the_count_table(k):
    """The oracle below is the notes' rule itself; it must give the notes' table."""
    cells = _notes_kept_cells(k)
    assert [len(_notes_starts(k * 1000, c * 1000, 1000)) ** 2 for c in cells] == COUNT_TABLE[k]


@FAST
@given(st.integers(1, 4000), st.integers(1, 4000), st.integers(1, 15))
def test_cover_counts_and_boxes_at_any_size(height, width, k):
    from detailclip.cover import complete_cover_boxes, scheme_boxes

    levels = complete_cover_boxes(height, width, k)
    assert [len(level) for level in levels] == COUNT_TABLE[k]
    rh, rw = -(-height // k) * k, -(-width // k) * k  # rounded up to multiples of k, by hand
    assert levels[0] == [(0, 0, rw, rh)]
    sides = []
    for level in levels:
        assert len({(x1 - x0, y1 - y0) for x0, y0, x1, y1 in level}) == 1  # one window size per level
        x0, y0, x1, y1 = level[0]
        cells_w, cells_h = (x1 - x0) / (rw // k), (y1 - y0) / (rh // k)
        assert cells_w == cells_h == int(cells_w)  # whole cells, the same number on both axes
        sides.append(cells_w)
        for x0, y0, x1, y1 in level:
            assert all(isinstance(v, int) for v in (x0, y0, x1, y1))
            assert 0 <= x0 < x1 <= rw and 0 <= y0 < y1 <= rh
    assert sides == _notes_kept_cells(k)
    for level, cells in zip(levels, sides):  # where the notes' step gives the table's count, it is used
        per_axis = math.isqrt(len(level))
        for axis, length, cell in ((0, rw, rw // k), (1, rh, rh // k)):
            notes = _notes_starts(length, cells * cell, cell)
            if len(notes) == per_axis:
                assert sorted({box[axis] for box in level}) == notes
    boxes, level_ids = scheme_boxes("cc", height, width, k)
    assert boxes.shape[0] == sum(COUNT_TABLE[k])
    assert boxes[0].tolist() == [0, 0, width, height]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= width + 1e-3).all() and (boxes[:, 3] <= height + 1e-3).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert level_ids.tolist() == [i for i, n in enumerate(COUNT_TABLE[k]) for _ in range(n)]


@st.composite
def cover_cases(draw):
    k = draw(st.integers(1, 15))
    cell_h, cell_w = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    rh, rw = k * cell_h, k * cell_w
    bw, bh = draw(st.integers(1, rw)), draw(st.integers(1, rh))
    x, y = draw(st.integers(0, rw - bw)), draw(st.integers(0, rh - bh))
    return k, rh, rw, (x, y, x + bw, y + bh)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(cover_cases())
def test_every_object_lies_inside_a_window_at_most_a_bounded_multiple_of_its_size(case):
    """Coverage promise: any object box (any size, any position) lies fully inside some window
    whose side, in cells, is at most B_k * max(1, object side in cells) (COVER_BOUND, k <= 15;
    at k = 10: 6, i.e. at most 6 x max(object side, cell side))."""
    from detailclip.cover import complete_cover_boxes

    k, rh, rw, (ox0, oy0, ox1, oy1) = case
    cell_h, cell_w = rh // k, rw // k
    holding = [(x1 - x0) / cell_w for level in complete_cover_boxes(rh, rw, k) for x0, y0, x1, y1 in level
               if x0 <= ox0 and y0 <= oy0 and ox1 <= x1 and oy1 <= y1]
    assert holding  # at least the whole image
    size_in_cells = max(1.0, (ox1 - ox0) / cell_w, (oy1 - oy0) / cell_h)
    assert min(holding) <= COVER_BOUND[k] * size_in_cells + 1e-9


@pytest.mark.parametrize("k", [3, 10])
def test_coverage_bound_is_attained_up_to_rounding(k):
    """The bound is not loose: at k = 10 a 228 px object at x = 669 with 224 px cells needs the
    1344 px window (ratio 5.89); at k = 3 a 226 px object at 223 needs the whole image (2.97)."""
    from detailclip.cover import complete_cover_boxes

    length, start, needed = {10: (228, 669, 1344), 3: (226, 223, 672)}[k]
    rh = rw = 224 * k
    box = (start, 0, start + length, length)
    sides = [x1 - x0 for level in complete_cover_boxes(rh, rw, k) for x0, y0, x1, y1 in level
             if x0 <= box[0] and y0 <= box[1] and box[2] <= x1 and box[3] <= y1]
    assert min(sides) == needed


# --------------------------------------------------------------------------- protocol
CLASSES = ("red cube", "blue sphere", "gray cylinder", "green cube")


@st.composite
def protocol_cases(draw):
    edges = sorted(draw(st.sets(st.floats(0.005, 0.5, allow_nan=False), min_size=2, max_size=5)))
    assume(all(b - a > 1e-4 for a, b in zip(edges, edges[1:])))
    gap = draw(st.booleans()) and len(edges) >= 4  # drop one inner bucket: a gap between buckets
    obj = st.fixed_dictionaries({
        "class": st.sampled_from(CLASSES),
        "rel_scale": st.floats(0.001, 0.8),
        "visible": st.booleans(),
        "visible_pixels": st.integers(0, 60),
    })
    scenes = [{"image_filename": f"i{i}.png", "objects": objs}
              for i, objs in enumerate(draw(st.lists(st.lists(obj, max_size=4), min_size=1, max_size=8)))]
    return edges, gap, draw(st.integers(0, 40)), scenes


def _protocol_input(scenes):
    """The scenes as the protocol takes them: benchmark.sources images where that module exists
    (invisible = ignored, visible pixels = area), else the scene dicts themselves."""
    try:
        from benchmark.sources import SourceImage, SourceObject
    except ImportError:
        return scenes
    from pathlib import Path

    return [SourceImage(Path(s["image_filename"]), s["image_filename"], 64, 64,
                        tuple(SourceObject(o["class"], (0.0, 0.0, 1.0, 1.0), float(o["visible_pixels"]), o["rel_scale"],
                                           ignore=not o["visible"]) for o in s["objects"]))
            for s in scenes]


@FAST
@given(protocol_cases())
def test_bucket_labels_partition_the_positives(case):
    from benchmark.buckets import Bucket
    from benchmark.protocol import Protocol

    edges, gap, threshold, scenes = case
    buckets = [Bucket(a, b) for a, b in zip(edges, edges[1:])]
    if gap:
        del buckets[1]
    rel = Protocol(CLASSES, tuple(buckets), threshold).relevance(_protocol_input(scenes))
    for q, cls in enumerate(CLASSES):
        for i, scene in enumerate(scenes):
            mine = [o for o in scene["objects"] if o["class"] == cls]
            present = [o["rel_scale"] for o in mine if o["visible"] and o["visible_pixels"] >= threshold]
            if present:
                expected_overall = 1
            else:
                expected_overall = -1 if mine else 0
            assert rel.overall[q, i] == expected_overall
            # the bucket of the largest present instance, clipped into the outer buckets
            home = None
            if present:
                s = min(max(max(present), buckets[0].lo), buckets[-1].hi)
                for b, bucket in enumerate(buckets):
                    if bucket.lo <= s < bucket.hi or (b == len(buckets) - 1 and s == bucket.hi):
                        home = b
            labels = rel.per_bucket[:, q, i]
            assert list(labels == 1) == [b == home for b in range(len(buckets))]
            if not mine:
                assert (labels == 0).all()
            else:
                assert (labels[[b for b in range(len(buckets)) if b != home]] == -1).all()
        # partition: every overall positive is positive in at most one bucket, exactly one unless
        # its scale falls in the gap
        positives_per_image = (rel.per_bucket[:, q] == 1).sum(0)
        assert ((positives_per_image == 1) <= (rel.overall[q] == 1)).all()
        assert (positives_per_image <= 1).all()
        if not gap:
            assert ((positives_per_image == 1) == (rel.overall[q] == 1)).all()


# --------------------------------------------------------------------------- metrics with ties
@st.composite
def score_cases(draw):
    q, n = draw(st.integers(1, 5)), draw(st.integers(1, 25))
    levels = draw(st.integers(1, 5))  # few score levels: ties everywhere
    scores = draw(arrays(np.int64, (q, n), elements=st.integers(0, levels - 1))).astype(np.float32) / levels
    labels = draw(arrays(np.int8, (q, n), elements=st.sampled_from([1, 0, 0, -1])))
    k = draw(st.integers(1, 12))
    return scores, labels, k


@settings(max_examples=80, deadline=None, derandomize=True)
@given(score_cases())
def test_metrics_match_sklearn_and_loops_with_ties(case):
    from benchmark.metrics import query_metrics

    scores, labels, k = case
    hit_ks = tuple(sorted({1, 5, k}))
    qm = query_metrics(scores, labels, hit_ks=hit_ks, precision_k=k)
    for i in range(scores.shape[0]):
        row = oracle_query(scores[i], labels[i], hit_ks, k)
        if row is None:
            assert math.isnan(qm.ap[i]) and math.isnan(qm.precision[i]) and math.isnan(qm.r_precision[i])
            continue
        assert qm.ap[i] == pytest.approx(row["AP"], abs=1e-9)
        for h in hit_ks:
            assert qm.hits[h][i] == row[f"hit@{h}"]
        assert qm.precision[i] == pytest.approx(row[f"precision@{k}"], abs=1e-12)
        assert qm.r_precision[i] == pytest.approx(row["r_precision"], abs=1e-12)
        assert (qm.n_positives[i], qm.n_negatives[i]) == (row["n_positives"], row["n_negatives"])


def test_constant_scorer_gets_the_worst_figures():
    """Pessimistic ties: a constant score ranks every relevant image after every irrelevant one."""
    from benchmark.metrics import query_metrics

    labels = np.array([[1, 0, 0, 1, 0, -1, 1]])
    qm = query_metrics(np.zeros((1, 7)), labels, hit_ks=(1, 3, 4), precision_k=4)
    # 3 negatives first, then positives at ranks 4, 5, 6
    assert qm.ap[0] == pytest.approx((1 / 4 + 2 / 5 + 3 / 6) / 3)
    assert (qm.hits[1][0], qm.hits[3][0], qm.hits[4][0]) == (0.0, 0.0, 1.0)
    assert qm.precision[0] == pytest.approx(1 / 4) and qm.r_precision[0] == 0.0


# --------------------------------------------------------------------------- COCO export
@st.composite
def id_maps(draw):
    h, w = draw(st.integers(3, 24)), draw(st.integers(3, 24))
    n = draw(st.integers(1, 4))
    ids = draw(arrays(np.int64, (h, w), elements=st.integers(0, n)))
    return ids, n, draw(st.integers(1, 6))


@FAST
@given(id_maps())
def test_coco_export_round_trips_random_masks(case):
    from pycocotools.coco import COCO

    from clevr_ds.annotate import annotate_objects
    from clevr_ds.export import to_coco
    from clevr_ds.vocab import Vocabulary

    ids, n, min_pixels = case
    h, w = ids.shape
    vocab = Vocabulary.load()
    classes = vocab.classes
    objects = []
    for i in range(n):
        color, shape = classes[(5 * i) % len(classes)].split(" ")
        objects.append({"shape": shape, "color": color, "material": "rubber", "class": f"{color} {shape}",
                        "size": 1.0, "target_scale": 0.1})
    scene = {"image_index": 3, "image_filename": "x.png", "width": w, "height": h, "seed": 1, "objects": objects}
    annotate_objects(scene, ids, min_visible_pixels=min_pixels)
    coco = COCO()
    coco.dataset = json.loads(json.dumps(to_coco([scene], vocab, "test")))
    coco.createIndex()
    anns = coco.loadAnns(coco.getAnnIds())
    expected_visible = [i for i in range(n) if (ids == i + 1).sum() >= min_pixels]
    assert [a["object_index"] for a in anns] == expected_visible
    assert coco.loadImgs(3)[0]["width"] == w and coco.loadImgs(3)[0]["height"] == h
    for ann in anns:
        i = ann["object_index"]
        truth = ids == i + 1
        assert np.array_equal(coco.annToMask(ann).astype(bool), truth)
        (y0, x0), (y1, x1) = np.argwhere(truth).min(0), np.argwhere(truth).max(0)
        assert ann["bbox"] == [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)]
        assert ann["area"] == int(truth.sum())
        assert coco.loadCats(ann["category_id"])[0]["name"] == objects[i]["class"]
        assert ann["rel_scale"] == pytest.approx(max(ann["bbox"][2:]) / max(h, w))

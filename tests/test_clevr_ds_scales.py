import numpy as np
import pytest

from clevr_ds.scales import ScaleRange, format_scales, parse_int_range, parse_scales, parse_size, range_for_image


def test_single_and_multiple_ranges():
    assert parse_scales("0.01-0.1") == [ScaleRange(0.01, 0.1)]
    ranges = parse_scales("0.01-0.02, 0.02-0.05,0.05-.1")
    assert ranges == [ScaleRange(0.01, 0.02), ScaleRange(0.02, 0.05), ScaleRange(0.05, 0.1)]
    assert format_scales(ranges) == "0.01-0.02,0.02-0.05,0.05-0.1"
    assert parse_scales("1e-2-1") == [ScaleRange(0.01, 1.0)]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty"),
        ("0.1", "malformed"),
        ("0.01-0.1-0.2", "malformed"),
        ("a-b", "malformed"),
        ("0.01-0.1,", "malformed"),
        ("-0.1-0.2", "malformed"),
        ("0.2-0.1", "A < B"),
        ("0.1-0.1", "A < B"),
        ("0-0.1", "(0, 1]"),
        ("0.5-1.5", "(0, 1]"),
    ],
)
def test_malformed_specs_are_rejected_with_one_line(spec, message):
    with pytest.raises(ValueError) as e:
        parse_scales(spec)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_images_are_split_evenly_between_ranges():
    ranges = parse_scales("0.01-0.02,0.02-0.05,0.05-0.1")
    counts = np.bincount([ranges.index(range_for_image(ranges, i)) for i in range(30)])
    assert counts.tolist() == [10, 10, 10]


def test_log_uniform_draws_stay_in_range_and_spread_in_log_space():
    r = ScaleRange(0.01, 0.1)
    draws = np.array([r.sample(np.random.default_rng(i)) for i in range(2000)])
    assert draws.min() >= 0.01 and draws.max() <= 0.1
    assert abs(np.mean(draws < 10**-1.5) - 0.5) < 0.05  # half the mass below the log-midpoint


def test_int_ranges():
    assert parse_int_range("3-10", "--objects") == (3, 10)
    assert parse_int_range("4", "--objects") == (4, 4)
    for bad in ("0-3", "5-2", "x", "3-"):
        with pytest.raises(ValueError, match="--objects"):
            parse_int_range(bad, "--objects")


def test_parse_size_reads_n_as_square_and_wxh_as_width_by_height():
    assert parse_size("2240") == parse_size(2240) == (2240, 2240)
    assert parse_size("320x192") == parse_size(" 320 X 192 ") == (320, 192)
    for bad in ("", "12x", "x12", "axb", "100x100x3", "-5", "1.5x2", "3,4"):
        with pytest.raises(ValueError) as refused:
            parse_size(bad)
        assert str(refused.value) == f"{bad!r} is not N or WxH, e.g. 2240 or 320x192"

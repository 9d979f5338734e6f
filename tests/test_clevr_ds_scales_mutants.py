"""Boundary cases of the scale grammar that mutation testing found untested (issue #15 item 5).

Oracle: the grammar in clevr_ds/scales.py's docstring and README, `0 < A < B <= 1` for scale ranges
and `1 <= A <= B` for integer ranges, each violation named by its own one-line error.
"""

import pytest

from clevr_ds.scales import ScaleRange, parse_int_range, parse_scales


def test_int_range_accepts_its_lower_bound_one():
    assert parse_int_range("1", "--objects") == (1, 1)
    assert parse_int_range("1-3", "--objects") == (1, 3)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("1-1", "A < B"),  # A = 1 is inside (0, 1]; what is wrong is A < B
        ("1-0.5", "A < B"),
        ("1.5-0.9", "(0, 1]"),  # A outside (0, 1] even though B < A too
        ("0.1-0", "(0, 1]"),  # B = 0 is outside (0, 1]
    ],
)
def test_each_violation_is_named_by_its_own_rule(spec, message):
    with pytest.raises(ValueError) as e:
        parse_scales(spec)
    assert message in str(e.value)


def test_empty_spec_error_states_the_grammar():
    for spec in ("", "   "):
        with pytest.raises(ValueError) as e:
            parse_scales(spec)
        assert str(e.value).startswith("empty scale spec") and "A-B" in str(e.value)


def test_upper_bound_one_is_allowed():
    assert parse_scales("0.5-1") == [ScaleRange(0.5, 1.0)]

"""Named standard splits (`render --standard`, issue #11 item 6): a standard renders exactly what its
options spelled out as flags render, conflicting flags are refused before anything is written, and
`validate` names a split whose content hash is the published one (and warns when only the settings are).

The rendering tests use a tiny standard added to the table for the test (the real ones are 2240 px);
the oracle is the same split rendered from explicit flags.
"""

from __future__ import annotations

import json

import pytest

from cli import main
from clevr_ds import standards
from clevr_ds.dataset import split_hash
from clevr_ds.standards import STANDARDS, Standard

TINY = Standard(
    title="CLEVR-DS tiny", splits={"val": 2}, hashes={},
    options={"scales": "0.15-0.3", "resolution": 64, "objects": "2-3", "family": "clevr", "gsd": None, "assets": None,
             "max_tilt": 0.0, "min_visible_pixels": 16, "engine": None, "samples": None, "denoise": None, "preset": "fast", "seed": 7},
)
TINY_AS_FLAGS = ["--split", "val", "-n", "2", "--scales", "0.15-0.3", "--resolution", "64", "--objects", "2-3",
                 "--preset", "fast", "--seed", "7"]


@pytest.fixture
def tiny_standard(monkeypatch):
    monkeypatch.setitem(STANDARDS, "tiny", TINY)
    return TINY


@pytest.fixture
def rendered_pair(tiny_standard, tmp_path):
    """The tiny standard's split rendered through --standard and from explicit flags."""
    by_name, by_flags = tmp_path / "by-name", tmp_path / "by-flags"
    assert main(["render", "--standard", "tiny", "--split", "val", "--out", str(by_name), "--quiet"]) == 0
    assert main(["render", *TINY_AS_FLAGS, "--out", str(by_flags), "--quiet"]) == 0
    return by_name, by_flags


def _meta(root) -> dict:
    meta = json.loads((root / "meta" / "val.json").read_text())
    meta["render"].pop("threads")
    return meta


def test_a_standard_renders_what_its_options_as_flags_render(rendered_pair):
    by_name, by_flags = rendered_pair
    assert _meta(by_name) == _meta(by_flags)
    assert _meta(by_name)["num_images"] == 2 and _meta(by_name)["seed"] == 7
    assert split_hash(by_name, "val") == split_hash(by_flags, "val")


def test_validate_names_the_published_standard_and_warns_on_its_settings_with_other_content(rendered_pair, monkeypatch, capsys):
    """Any of a split's published hashes (one per CPU instruction set) names it; none of them: one warning."""
    by_name, _ = rendered_pair
    content, other = split_hash(by_name, "val"), "0" * 64
    published = {"val": {standards.AVX2: other, standards.AVX512: content}}
    monkeypatch.setitem(STANDARDS, "tiny", Standard(TINY.title, TINY.options, TINY.splits, published))
    capsys.readouterr()
    assert main(["validate", str(by_name)]) == 0
    out = capsys.readouterr()
    assert f"val: sha256 {content} (2 images): CLEVR-DS tiny val, as published (AVX-512 render)" in out.out.splitlines()
    assert out.err == ""

    published = {"val": {standards.AVX2: other, standards.AVX512: "1" * 64}}
    monkeypatch.setitem(STANDARDS, "tiny", Standard(TINY.title, TINY.options, TINY.splits, published))
    assert main(["validate", str(by_name)]) == 0
    out = capsys.readouterr()
    assert f"val: sha256 {content} (2 images)" in out.out.splitlines()
    assert len(out.err.splitlines()) == 1
    assert f"CLEVR-DS tiny val but none of its published content hashes {other} (AVX2), {'1' * 64} (AVX-512)" in out.err


@pytest.mark.parametrize("flags, message", [
    (["--preset", "default"], "--standard v1 fixes --preset to fast; leave --preset out"),
    (["--resolution", "64"], "--standard v1 fixes --resolution to 2240"),
    (["-n", "5"], "--standard v1 fixes --num-images to 200"),
    (["--seed", "3"], "--standard v1 fixes --seed to 0"),
    (["--samples", "8"], "--standard v1 fixes --samples to the preset's value"),
    (["--split", "train"], "CLEVR-DS-bench v1 has no split 'train' (splits: test)"),
])
def test_flags_that_contradict_a_standard_are_one_line_and_write_nothing(flags, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["render", "--standard", "v1", *flags, "--out", str(out), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_an_unknown_standard_is_one_line_naming_the_known_ones(tmp_path, capsys):
    assert main(["render", "--standard", "v9", "--out", str(tmp_path / "out")]) != 0
    assert capsys.readouterr().err == "error: unknown --standard 'v9'; choose from quick, v1, aerial-v1\n"
    assert not (tmp_path / "out").exists()


def test_flags_equal_to_the_standard_and_execution_flags_are_accepted():
    """Restating a fixed value is not a conflict; where and how to run (workers, executor) stays free."""
    from cli_commands.render import render, standard_options

    ctx = render.make_context("render", ["--standard", "v1", "--preset", "fast", "--seed", "0", "--workers", "2"])
    fixed = standard_options(ctx, "v1")
    assert fixed == {"split": "test", "num_images": 200, "resolution": 2240, "scales": "0.01-0.1", "objects": "3-10",
                     "family": "clevr", "gsd": None, "assets": None, "ground": None, "ground_gsd": None, "max_tilt": 0.0,
                     "preset": "fast", "seed": 0, "min_visible_pixels": 16, "engine": None, "samples": None,
                     "denoise": None, "out": "output/clevr-ds-bench-v1"}  # fmt: skip
    ctx = render.make_context("render", ["--standard", "v1", "--out", "elsewhere"])
    assert standard_options(ctx, "v1")["out"] == "elsewhere"


def test_published_and_claimed_look_up_the_table():
    quick = STANDARDS["quick"]
    for cpu, content in quick.hashes["test"].items():
        assert standards.published(content) == ("CLEVR-DS quick", "test", cpu)
    assert standards.published("f" * 64) is None
    meta = {"split": "test", "num_images": 200, "scales": "0.01-0.1", "width": 2240, "height": 2240,
            "objects": [3, 10], "seed": 0}
    assert standards.claimed_by(meta) == (STANDARDS["v1"], "test")
    assert standards.claimed_by(dict(meta, num_images=20)) == (quick, "test")
    for change in ({"seed": 1}, {"height": 1120}, {"objects": [3, 9]}, {"scales": "0.01-0.2"}, {"split": "val"}):
        assert standards.claimed_by(dict(meta, **change)) is None


def test_the_leaderboard_caption_names_a_published_split(monkeypatch):
    from benchmark.leaderboard import caption

    content = "ab" * 32
    record = {"dataset": "CLEVR-DS", "split": "val", "split_hash": content, "n_images": 2, "method": "clip",
              "backbone": "B", "pretrained": "none",
              "metrics": {"overall": {"n_queries": 3, "n_positives": 4}, "buckets": {}}}
    assert "(content abababababab), 2 images" in caption([record], {})
    monkeypatch.setitem(STANDARDS, "tiny", Standard(TINY.title, TINY.options, TINY.splits, {"val": {standards.AVX2: content}}))
    assert "(content abababababab = CLEVR-DS tiny val, AVX2 render), 2 images" in caption([record], {})

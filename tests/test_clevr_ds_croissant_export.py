"""`export --format croissant` (issue #29 item 3): ROOT/croissant.json that mlcroissant validates offline and iterates,
its records equal to the scene JSONs and PNGs, and the dataset card ROOT/README.md whose render command renders the
split again with the same content hash; someone else's README.md is never overwritten.

Oracles: mlcroissant (with every network connection refused), the scene JSONs and PNGs read here, a second real
render from the card's command, `validate`'s content hash.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clevr_ds.card import MARK, render_command, render_flags
from clevr_ds.dataset import split_hash
from tests.conftest import run_cli
from tests.test_clevr_ds_dota_export import files, one_line
from tests.test_clevr_ds_integrity import SPLIT, edit_json, png_file, run, scene_file

OBJECT_KEYS = ("class", "shape", "color", "material", "bbox", "rel_scale", "visible", "visible_pixels")
PRESETS = {"default": {"engine": "cycles", "samples": 4, "denoise": True, "device": "cpu", "threads": 0, "knob": 1},
           "fast": {"engine": "cycles", "samples": 1, "denoise": True, "device": "cpu", "threads": 0, "knob": 2}}  # fmt: skip


@pytest.fixture
def offline(monkeypatch):
    """Every network connection fails (mlcroissant must validate and read local files without one)."""

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def export(capsys, root: Path, *args) -> tuple[int, str, str]:
    return run(capsys, "export", root, "--format", "croissant", *args)


def text(value):
    return value.decode() if isinstance(value, bytes) else value


def test_mlcroissant_validates_offline_and_its_records_are_the_scenes(capsys, tiny_copy, offline):
    import mlcroissant as mlc

    code, out, err = export(capsys, tiny_copy)
    assert code == 0 and err == "" and out == f"{SPLIT}: {tiny_copy / 'croissant.json'}, {tiny_copy / 'README.md'}\n"
    dataset = mlc.Dataset(jsonld=tiny_copy / "croissant.json")  # raises on any validation error
    assert dataset.metadata.issues.errors == set() and dataset.metadata.issues.warnings == set()
    metadata = json.loads((tiny_copy / "croissant.json").read_text())
    assert metadata["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    shas = {d["contentUrl"]: d["sha256"] for d in metadata["distribution"] if d["@type"] == "cr:FileObject"}
    assert shas == {name: hashlib.sha256((tiny_copy / name).read_bytes()).hexdigest()
                    for name in (f"meta/{SPLIT}.json", f"annotations/instances_{SPLIT}.json", f"annotations/manifest_{SPLIT}.csv")}
    records = list(dataset.records(f"scenes-{SPLIT}"))
    assert len(records) == 4
    for i, record in enumerate(records):
        scene = json.loads(scene_file(tiny_copy, i).read_text())
        got = {k.removeprefix(f"scenes-{SPLIT}/"): v for k, v in record.items()}
        for key in ("image_index", "image_filename", "split", "width", "height", "seed", "scale_range"):
            assert text(got[key]) == scene[key], key
        assert [text(c) for c in got["classes"]] == [o["class"] for o in scene["objects"]]
        objects = [{k.removeprefix(f"scenes-{SPLIT}/objects/"): text(v) for k, v in o.items()} for o in got["objects"]]
        assert [{k: o[k] for k in OBJECT_KEYS} for o in objects] == [{k: o[k] for k in OBJECT_KEYS} for o in scene["objects"]]
        assert [o["mask"] for o in objects] == [o["mask"]["counts"] for o in scene["objects"]]
    images = list(dataset.records(f"images-{SPLIT}"))
    assert [text(r[f"images-{SPLIT}/image_filename"]) for r in images] == [f"CLEVR-DS_{SPLIT}_{i:06d}.png" for i in range(4)]
    for i, record in enumerate(images):
        assert np.array_equal(np.asarray(record[f"images-{SPLIT}/image"]), np.asarray(Image.open(png_file(tiny_copy, i)).convert("RGB")))


def test_the_cards_command_renders_the_same_split(capsys, tiny_copy, tmp_path):
    assert export(capsys, tiny_copy)[0] == 0
    card = (tiny_copy / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-4.0\n") and MARK in card
    content = split_hash(tiny_copy, SPLIT)
    assert f"| {SPLIT} | `{content}` | 4 |" in card and "| val | 4 | 128x128 |" in card
    command = next(line for line in card.splitlines() if line.startswith("clevr-ds render "))
    args = shlex.split(command)[2:]
    assert args[args.index("--out") + 1] == str(tiny_copy) and args[args.index("--preset") + 1] == "fast"
    args[args.index("--out") + 1] = str(tmp_path / "again")
    run_cli("render", *args, "--quiet")
    assert split_hash(tmp_path / "again", SPLIT) == content


def test_bytes_are_deterministic_and_a_card_is_rewritten_but_no_other_readme(capsys, tiny_copy):
    assert export(capsys, tiny_copy)[0] == 0
    first = {k: v for k, v in files(tiny_copy).items() if k in ("croissant.json", "README.md")}
    assert export(capsys, tiny_copy)[0] == 0
    assert {k: v for k, v in files(tiny_copy).items() if k in ("croissant.json", "README.md")} == first
    (tiny_copy / "README.md").write_text("# My own notes\n")
    (tiny_copy / "croissant.json").unlink()
    before = files(tiny_copy)
    code, out, err = export(capsys, tiny_copy)
    assert f"{tiny_copy / 'README.md'} is not a card this export wrote; move it away" in one_line(code, err) and out == ""
    assert files(tiny_copy) == before


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda root: (root / "annotations" / f"manifest_{SPLIT}.csv").unlink(), "manifest_val.csv: no such file"),
        (lambda root: edit_json(scene_file(root, 0), lambda s: s.update(seed="x")), "seed: expected integer"),
        (lambda root: (root / "README.md").symlink_to(root.parent / "elsewhere.md"), "leaves"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(capsys, tiny_copy, spoil, message):
    spoil(tiny_copy)
    before = files(tiny_copy.parent)
    code, out, err = export(capsys, tiny_copy)
    assert message in one_line(code, err).lower() and out == ""
    assert files(tiny_copy.parent) == before


def test_render_flags_name_the_preset_and_its_overrides():
    fast = {"engine": "cycles", "samples": 1, "denoise": True, "device": "cpu", "threads": 2, "knob": 2}
    assert render_flags(fast, PRESETS) == ["--preset", "fast"]
    assert render_flags({**fast, "samples": 7, "denoise": False}, PRESETS) == ["--preset", "fast", "--samples", "7", "--no-denoise"]
    assert render_flags({**fast, "knob": 1, "samples": 4}, PRESETS) == ["--preset", "default"]
    assert render_flags({**fast, "engine": "eevee", "device": "gpu"}, PRESETS) == ["--preset", "fast", "--engine", "eevee", "--device", "gpu"]
    assert render_flags({**fast, "knob": 3}, PRESETS) is None
    meta = {"split": "s", "num_images": 2, "width": 64, "height": 32, "objects": [3, 3], "seed": 5, "min_visible_pixels": 9,
            "scales": "0.1-0.2", "family": "aerial", "gsd": 0.3, "max_tilt_deg": 10.0, "render": fast,
            "vocabulary": {"shapes": {"car": {}, "crate": {"file": "crate.obj"}}}, "ground": {"gsd": 0.5}}  # fmt: skip
    assert render_command("out dir", meta, PRESETS) == (
        "clevr-ds render --out 'out dir' --split s --num-images 2 --resolution 64x32 --objects 3 --seed 5 --min-visible-pixels 9 "
        "--family aerial --gsd 0.3 --max-tilt 10.0 --assets ASSETS_DIR --ground GROUND_IMAGE --ground-gsd 0.5 --preset fast")
    assert render_command("out", {**meta, "render": {**fast, "knob": 3}}, PRESETS) is None

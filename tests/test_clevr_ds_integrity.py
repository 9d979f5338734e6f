"""Data integrity of a CLEVR-DS folder as `validate` and `bench` read it: content hash, seeds, paths, completeness, schema.

Expectations come from outside the code under test: the hash is recomputed here from its documented
recipe, seeds with numpy's SeedSequence, file names from the documented layout.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.results import load_run
from clevr_ds.dataset import DatasetError, read_class_names, split_hash
from clevr_ds.schema import META, SCENE, problem
from clevr_ds.validate import validate
from cli import main
from detailclip.checkpoint import load_checkpoint
from tests.benchmark_fixtures import TINY_BACKBONE, make_dataset, random_scenes

SPLIT = "val"
FAST = ["--backbone", TINY_BACKBONE, "--pretrained", "none", "--templates", "short", "--cover-k", "2", "--quiet"]


def scene_file(root: Path, index: int) -> Path:
    return root / "scenes" / SPLIT / f"CLEVR-DS_{SPLIT}_{index:06d}.json"


def png_file(root: Path, index: int) -> Path:
    return root / "images" / SPLIT / f"CLEVR-DS_{SPLIT}_{index:06d}.png"


def edit_json(path: Path, change) -> None:
    """Apply `change` to the parsed file in place, or write what it returns when that is not None."""
    data = json.loads(path.read_text())
    new = change(data)
    path.write_text(json.dumps(data if new is None else new))


@pytest.fixture
def copy(tiny_dataset, tmp_path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    return root


def expected_hash(root: Path) -> str:
    """The split hash as its docstring defines it, recomputed from the files."""

    def canonical(record: dict, drop: tuple[str, ...]) -> bytes:
        record = {k: v for k, v in record.items() if k != "num_images"}
        record["render"] = {k: v for k, v in record["render"].items() if k not in drop}
        return json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"

    def critical_chunks(data: bytes) -> bytes:
        out, pos = b"", 8
        while pos < len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            if 65 <= data[pos + 4] <= 90:  # chunk type starting with an upper-case letter
                out += data[pos : pos + 12 + length]
            pos += 12 + length
        return out

    h = hashlib.sha256(canonical(json.loads((root / "meta" / f"{SPLIT}.json").read_text()), ("device", "threads")))
    for path in sorted((root / "scenes" / SPLIT).glob("*.json")):
        scene = json.loads(path.read_text())
        h.update(canonical(scene, ("device", "threads", "render_s", "annotate_s")))
        h.update(hashlib.sha256(critical_chunks((root / "images" / SPLIT / scene["image_filename"]).read_bytes())).digest())
    return h.hexdigest()


def with_text_chunk(data: bytes) -> bytes:
    """The PNG with a tEXt 'Date' chunk after its IHDR (8 signature + 25 IHDR bytes)."""
    body = b"Date\x002026-11-29 10:00:00"
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return data[:33] + chunk + data[33:]


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def bench(capsys, data: Path, out: Path, *args) -> tuple[int, str, str]:
    return run(capsys, "bench", "--data", data, "--split", SPLIT, "--out", out, "--model", "clip", *FAST, *args)


def lines_naming(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if name in line]


# 1. Content identity


def test_split_hash_follows_its_documented_recipe(tiny_dataset):
    assert split_hash(tiny_dataset, SPLIT) == expected_hash(tiny_dataset)


def test_split_hash_ignores_execution_fields_and_png_metadata(tiny_dataset, copy):
    before = split_hash(tiny_dataset, SPLIT)
    for i in range(4):
        edit_json(scene_file(copy, i), lambda s: s["render"].update(render_s=99.0, annotate_s=7.5, threads=64, device="gpu"))
    edit_json(copy / "meta" / f"{SPLIT}.json", lambda m: m["render"].update(threads=3))
    png = png_file(copy, 0)
    png.write_bytes(with_text_chunk(png.read_bytes()))
    with Image.open(png) as a, Image.open(png_file(tiny_dataset, 0)) as b:
        assert a.info.get("Date") and np.array_equal(np.asarray(a), np.asarray(b))  # a valid PNG, same pixels
    assert png.read_bytes() != png_file(tiny_dataset, 0).read_bytes()
    assert split_hash(copy, SPLIT) == before == expected_hash(copy)


def test_split_hash_changes_with_one_pixel_or_one_box(tiny_dataset, tmp_path):
    hashes = []
    for name, pixel, grow in (("same", 0, 0), ("pixel", 1, 0), ("bbox", 0, 1)):
        root = tmp_path / name
        shutil.copytree(tiny_dataset, root)
        with Image.open(png_file(root, 0)) as img:
            pixels = np.asarray(img).copy()
        pixels[5, 7, 0] ^= pixel  # re-encoded by the same encoder either way
        Image.fromarray(pixels).save(png_file(root, 0))
        edit_json(scene_file(root, 1), lambda s: s["objects"][0]["bbox"].__setitem__(2, s["objects"][0]["bbox"][2] + grow))
        hashes.append(split_hash(root, SPLIT))
    assert len(set(hashes)) == 3


def test_validate_prints_each_split_hash(capsys, copy):
    code, out, _ = run(capsys, "validate", copy)
    assert code == 0
    assert out.splitlines() == [f"{copy}: OK", f"{SPLIT}: sha256 {expected_hash(copy)} (4 images)"]


# 2. Seeds


def test_scene_seeds_are_derived_from_the_global_seed(tiny_dataset):
    meta = json.loads((tiny_dataset / "meta" / f"{SPLIT}.json").read_text())
    for i in range(4):
        scene = json.loads(scene_file(tiny_dataset, i).read_text())
        ss = np.random.SeedSequence([meta["seed"], zlib.crc32(SPLIT.encode()), i])
        assert scene["seed"] == int(ss.generate_state(1, np.uint32)[0]) and scene["global_seed"] == meta["seed"]


def test_validate_reports_wrong_seeds_one_line_per_scene(copy):
    edit_json(scene_file(copy, 1), lambda s: s.update(seed=s["seed"] + 1))
    edit_json(scene_file(copy, 2), lambda s: s.update(global_seed=5))
    problems = validate(copy)
    assert len(problems) == 2 and "seed" in problems[0] and "seed" in problems[1]
    assert [len(lines_naming("\n".join(problems), scene_file(copy, i).name)) for i in range(4)] == [0, 1, 1, 0]
    edit_json(copy / "meta" / f"{SPLIT}.json", lambda m: m.update(seed=1))
    assert len(validate(copy)) == 4  # now no scene's seed fits


# 3. Paths stay inside the dataset


@pytest.mark.parametrize("filename", ["/etc/passwd", "../../x.png", "CLEVR-DS_val_000002.png", "CLEVR-DS_val_000001.jpg"])
def test_image_filename_must_be_the_layout_name(capsys, copy, tmp_path, filename):
    edit_json(scene_file(copy, 1), lambda s: s.update(image_filename=filename))
    name = scene_file(copy, 1).name
    (line,) = validate(copy)
    assert name in line and filename in line
    code, _, err = bench(capsys, copy, tmp_path / "out")
    assert code != 0 and err.count("\n") == 1 and name in err


def test_symlinks_leaving_the_root_are_refused(capsys, copy, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    for path in (png_file(copy, 0), scene_file(copy, 2)):
        shutil.move(path, outside / path.name)
        path.symlink_to(outside / path.name)
    problems = validate(copy)
    assert len(problems) == 2 and all("leaves" in p for p in problems)
    for path in (scene_file(copy, 0), scene_file(copy, 2)):  # the scene of the linked image, the linked scene
        assert len(lines_naming("\n".join(problems), path.name)) == 1
    code, _, err = bench(capsys, copy, tmp_path / "out")
    assert code != 0 and err.count("\n") == 1 and "leaves" in err


def test_split_names_must_be_plain(capsys, copy, tmp_path):
    code, _, err = bench(capsys, copy, tmp_path / "out", "--split", "../ds/meta/val")
    assert code != 0 and err.count("\n") == 1 and "not a plain name" in err
    edit_json(copy / "meta" / f"{SPLIT}.json", lambda m: m.update(split="test"))
    assert len(validate(copy)) == 1
    code, _, err = bench(capsys, copy, tmp_path / "out")
    assert code != 0 and err.count("\n") == 1 and "meta of split 'test'" in err


# 4. Incomplete or malformed splits


def test_bench_refuses_an_incomplete_split_unless_allowed(capsys, copy, tmp_path):
    code, _, _ = bench(capsys, copy, tmp_path / "full")
    (record,) = (load_run(p) for p in (tmp_path / "full").glob("*.json"))
    assert code == 0 and (record["n_images"], record["n_images_expected"], record["complete"]) == (4, 4, True)
    assert record["split_hash"] == expected_hash(copy)
    scene_file(copy, 2).unlink()
    png_file(copy, 3).unlink()
    code, _, err = bench(capsys, copy, tmp_path / "out")
    assert code != 0 and err.count("\n") == 1 and "--allow-incomplete" in err
    assert scene_file(copy, 2).name in err and png_file(copy, 3).name in err
    assert any("incomplete" in p and scene_file(copy, 2).name in p for p in validate(copy))
    code, _, _ = bench(capsys, copy, tmp_path / "out", "--allow-incomplete")
    (record,) = (load_run(p) for p in (tmp_path / "out").glob("*.json"))
    assert code == 0 and (record["n_images"], record["n_images_expected"], record["complete"]) == (2, 4, False)


def test_training_and_zero_shot_refuse_an_incomplete_split_unless_allowed(capsys, copy, tmp_path):
    scene_file(copy, 2).unlink()
    png_file(copy, 3).unlink()
    train = ["train", "--data", copy, "--split", SPLIT, "--size", "tiny", "--cover-k", "2",
             "--epochs", "1", "--batch-size", "2", "--cache-dir", "none", "--out", tmp_path / "m.pt", *FAST[:6], "--quiet"]
    zero_shot = ["zero-shot", "--data", copy, "--split", SPLIT, "--factor", "2", *FAST[:6], "--quiet"]
    backbone = ["train-backbone", "--data", copy, "--split", SPLIT, "--val-split", SPLIT, "--steps", "1",
                "--batch-size", "4", "--images-per-batch", "2", "--backbone", TINY_BACKBONE, "--out", tmp_path / "b.safetensors",
                "--quiet"]
    for args in (train, zero_shot, backbone):
        code, out, err = run(capsys, *args)
        assert code != 0 and err.count("\n") == 1 and "--allow-incomplete" in err, args[0]
        assert scene_file(copy, 2).name in err and png_file(copy, 3).name in err
    assert not any(tmp_path.glob("m.pt*")) and not any(tmp_path.glob("b.safetensors*"))
    code, out, err = run(capsys, *train, "--allow-incomplete")
    assert code == 0, err
    _, config = load_checkpoint(tmp_path / "m.pt", "cpu")
    scene_file(copy, 3).unlink()
    png_file(copy, 2).unlink()
    assert config["num_train_images"] + config["num_val_images"] == 2
    assert config["data"]["split_hash"] == expected_hash(copy)


def _bbox(value):
    return lambda s: s["objects"][0].update(bbox=value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: [s], "expected an object, got list"),
        (_bbox("10 10 5 5"), "objects[0].bbox: expected a list of 4, got string"),
        (_bbox([1, 2, 3]), "objects[0].bbox: expected a list of 4, got list"),
        (_bbox([1, 2, 3, "4"]), "objects[0].bbox[3]: expected integer or number, got string"),
        (lambda s: s["objects"][0].update(visible=1), "objects[0].visible: expected boolean, got integer"),
        (lambda s: {k: v for k, v in s.items() if k != "image_index"}, "missing keys image_index"),
    ],
)
def test_malformed_scene_is_one_line(capsys, copy, tmp_path, change, message):
    edit_json(scene_file(copy, 1), change)
    name = scene_file(copy, 1).name
    (line,) = validate(copy)
    assert name in line and message in line
    code, _, err = bench(capsys, copy, tmp_path / "out")
    assert code != 0 and err.count("\n") == 1 and name in err and message in err


def test_rendered_files_conform_to_the_schema(tiny_dataset):
    assert problem(json.loads((tiny_dataset / "meta" / f"{SPLIT}.json").read_text()), META) is None
    for i in range(4):
        assert problem(json.loads(scene_file(tiny_dataset, i).read_text()), SCENE) is None


# 5. --cache-dir none


def test_cache_dir_none_writes_no_cache(capsys, tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "data", random_scenes(3, seed=4))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert run(capsys, "bench", "--data", data, "--out", "out", "--model", "cc-mean", *FAST, "--cache-dir", "none")[0] == 0
    assert sorted(p.name for p in work.iterdir()) == ["out"]
    assert not (work / "out" / "feature_cache").exists() and list((work / "out").glob("*.json"))
    assert run(capsys, "bench", "--data", data, "--out", "out2", "--model", "cc-mean", *FAST)[0] == 0
    assert (work / "out2" / "feature_cache").is_dir()  # the default does cache: the check above can fail


def _write(path, text):
    path.write_text(text)
    return path


def test_read_class_names_skips_blank_lines_and_comments_and_strips(tmp_path):
    text = "# classes of a toy set\n  red cube \n\n\t\n  # not a class\nblue sphere\n"
    assert read_class_names(_write(tmp_path / "c.txt", text)) == ["red cube", "blue sphere"]
    with pytest.raises(DatasetError, match=r"^cannot read classes file .*nope\.txt: "):
        read_class_names(tmp_path / "nope.txt")
    with pytest.raises(DatasetError, match=r"^classes file .*empty\.txt names no classes$"):
        read_class_names(_write(tmp_path / "empty.txt", "# only a comment\n\n"))


def test_undecodable_classes_file_is_a_dataset_error(tmp_path):
    bad = tmp_path / "c.txt"
    bad.write_bytes(b"red \xff cube\n")
    with pytest.raises(DatasetError, match=r"^cannot read classes file .*c\.txt: 'utf-8' codec can't decode"):
        read_class_names(bad)

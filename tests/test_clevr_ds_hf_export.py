"""`export --format hf` (issue #29 item 1): an image folder that the real `datasets` library loads, every object's
class, box, mask, rel_scale and visibility and the split's content hash in it, identical bytes for identical splits;
bad input is one line and writes nothing.

Oracles: `datasets.load_dataset("imagefolder")`, the scene JSONs and PNGs read here, pycocotools for the masks,
`validate`'s content hash.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from clevr_ds.dataset import split_hash
from tests.test_clevr_ds_dota_export import files, one_line
from tests.test_clevr_ds_integrity import SPLIT, edit_json, png_file, run, scene_file


def export(capsys, root: Path, *args) -> tuple[int, str, str]:
    return run(capsys, "export", root, "--format", "hf", "--split", SPLIT, *args)


def load(data_dir: Path, tmp_path: Path, **kwargs):
    import datasets

    return datasets.load_dataset("imagefolder", data_dir=str(data_dir), cache_dir=str(tmp_path / "hf-cache"), **kwargs)


def test_datasets_loads_every_field_of_every_object(capsys, tiny_copy, tmp_path):
    code, out, err = export(capsys, tiny_copy)
    folder = tiny_copy / "hf"
    assert code == 0 and err == "" and out == f"{SPLIT}: {folder / SPLIT} (datasets.load_dataset('imagefolder', data_dir='{folder}'))\n"
    loaded = load(folder, tmp_path)
    assert list(loaded) == ["validation"]  # datasets' name for a folder named val
    rows = loaded["validation"]
    assert rows.num_rows == 4
    content = split_hash(tiny_copy, SPLIT)
    for i, row in enumerate(rows):
        scene = json.loads(scene_file(tiny_copy, i).read_text())
        assert np.array_equal(np.asarray(row["image"]), np.asarray(Image.open(png_file(tiny_copy, i)).convert("RGB")))
        assert {k: row[k] for k in ("image_index", "split", "width", "height", "seed", "scale_range")} == \
            {k: scene[k] for k in ("image_index", "split", "width", "height", "seed", "scale_range")}  # fmt: skip
        assert row["content_hash"] == content
        assert len(row["objects"]) == len(scene["objects"]) > 0
        for got, obj in zip(row["objects"], scene["objects"]):
            for key in ("class", "shape", "color", "material", "bbox", "rel_scale", "visible", "visible_pixels"):
                assert got[key] == obj[key], key
            assert got["mask"] == obj["mask"]
            mask = mask_utils.decode({"size": got["mask"]["size"], "counts": got["mask"]["counts"].encode()})
            assert int(mask.sum()) == obj["visible_pixels"] and list(mask_utils.toBbox(got["mask"])) == obj["bbox"]


def test_bytes_are_deterministic_and_other_splits_stay(capsys, tiny_copy, tmp_path):
    assert export(capsys, tiny_copy)[0] == 0
    first = files(tiny_copy / "hf")
    assert sorted(first) == [f"{SPLIT}/CLEVR-DS_{SPLIT}_{i:06d}.png" for i in range(4)] + [f"{SPLIT}/metadata.jsonl"]
    assert all(first[f"{SPLIT}/CLEVR-DS_{SPLIT}_{i:06d}.png"] == png_file(tiny_copy, i).read_bytes() for i in range(4))
    (tiny_copy / "hf" / "test").mkdir()
    (tiny_copy / "hf" / "test" / "keep.png").write_bytes(b"another split's file")
    assert export(capsys, tiny_copy, "--out", tmp_path / "elsewhere")[0] == 0
    assert export(capsys, tiny_copy)[0] == 0  # again, beside another split's folder
    assert files(tmp_path / "elsewhere") == first == {k: v for k, v in files(tiny_copy / "hf").items() if not k.startswith("test/")}


def test_an_incomplete_split_names_its_hash_over_what_it_holds(capsys, tiny_copy, tmp_path):
    scene_file(tiny_copy, 3).unlink()
    code, _, err = export(capsys, tiny_copy, "--allow-incomplete")
    assert code == 0 and err == "warning: split 'val': exported 3 of 4 scenes (incomplete)\n"
    rows = load(tiny_copy / "hf", tmp_path)["validation"]
    assert rows["image_index"] == [0, 1, 2] and set(rows["content_hash"]) == {split_hash(tiny_copy, SPLIT)}


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda root: edit_json(scene_file(root, 1), lambda s: s["objects"][0].update(rel_scale="big")), "objects[0].rel_scale: expected"),
        (lambda root: png_file(root, 2).unlink(), "is incomplete: missing CLEVR-DS_val_000002.png"),
        (lambda root: (root / "hf").symlink_to(root.parent, target_is_directory=True), "leaves"),
        (lambda root: (root / "hf" / SPLIT).mkdir(parents=True) or (root / "hf" / SPLIT / "x.png").write_bytes(b""),
         "holds files that are not of split 'val' (x.png); export into an empty folder"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(capsys, tiny_copy, spoil, message):
    spoil(tiny_copy)
    before = files(tiny_copy.parent)
    code, out, err = export(capsys, tiny_copy)
    assert message in one_line(code, err) and out == ""
    assert files(tiny_copy.parent) == before

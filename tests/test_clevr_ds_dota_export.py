"""`export --format dota` (issue #27 item 4): DOTA v1.5 with the masks' oriented boxes and the horizontal
boxes CLEVR-DS measures scale on, identical bytes for identical splits, read back by the DOTA reader,
and `bench --dota` on it gives the native figures, every bucket and every method; bad input is one line
and writes nothing.

Oracles: the scene JSONs and masks read here, clevr_ds.obb (tested against independent constructions in
test_clevr_ds_obb), the native bench run, file trees listed before and after.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.methods import method_names
from benchmark.sources import clevr_ds_source, dota_source
from clevr_ds.annotate import decode_mask, encode_mask
from clevr_ds.dataset import read_class_names
from clevr_ds.obb import UnitMeshes, contains, mask_obb, object_obbs
from clevr_ds.vocab import Vocabulary
from tests.benchmark_fixtures import make_checkpoint
from tests.hostile_fs import file_in_the_way, tree
from tests.test_benchmark_sources import assert_same_runs, bench
from tests.test_clevr_ds_integrity import SPLIT, edit_json, png_file, run, scene_file

HINT_BUCKETS = "0.1-0.2,0.2-0.3"  # the tiny split's scales, as export prints them for bench


def export(capsys, root: Path, *args) -> tuple[int, str, str]:
    return run(capsys, "export", root, "--format", "dota", "--split", SPLIT, *args)


def files(root: Path) -> dict[str, bytes]:
    """`tree(root)` less the folder locks, which name their last holder."""
    return {name: data for name, data in tree(root).items() if Path(name).name != ".lock"}


def rows(path: Path) -> tuple[list[str], list[tuple[np.ndarray, str, int]]]:
    """A label file's header lines and (corners (4, 2), category, difficult) per object line."""
    lines = path.read_text().splitlines()
    objects = [(np.array([float(v) for v in t[:8]]).reshape(4, 2), t[8], int(t[9])) for t in (line.split() for line in lines[2:])]
    return lines[:2], objects


def test_export_writes_dota_with_the_masks_boxes(capsys, tiny_copy):
    code, out, err = export(capsys, tiny_copy)
    folder = tiny_copy / "dota" / SPLIT
    assert code == 0 and err == "" and out == (f"{SPLIT}: {folder} (bench --dota {folder} --classes {folder / 'classes.txt'} "
                                                f"--buckets {HINT_BUCKETS})\n")  # fmt: skip
    vocab = Vocabulary.load()
    assert read_class_names(folder / "classes.txt") == vocab.classes
    rotated = 0
    for i in range(4):
        scene = json.loads(scene_file(tiny_copy, i).read_text())
        stem = f"CLEVR-DS_{SPLIT}_{i:06d}"
        assert (folder / "images" / f"{stem}.png").read_bytes() == png_file(tiny_copy, i).read_bytes()
        header, oriented = rows(folder / "labelTxt" / f"{stem}.txt")
        hbb_header, horizontal = rows(folder / "labelTxt-hbb" / f"{stem}.txt")
        assert header == hbb_header == ["imagesource:CLEVR-DS", "gsd:null"]
        assert len(oriented) == len(horizontal) == len(scene["objects"])
        for obj, (corners, cat, difficult), (box, hcat, hdifficult) in zip(scene["objects"], oriented, horizontal):
            mask = decode_mask(obj["mask"])
            assert (cat, difficult) == (hcat, hdifficult) == (obj["class"].replace(" ", "-"), int(not obj["visible"]))
            np.testing.assert_allclose(corners, mask_obb(mask), atol=1e-9)
            assert contains(corners, mask)
            x, y, w, h = obj["bbox"]
            assert box.tolist() == [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
            rotated += list(obj["bbox"]) != [*corners.min(0), *(corners.max(0) - corners.min(0))]
    assert rotated > 0  # some oriented box's own axis-aligned box is not the mask's box: the horizontal labels matter


def store_boxes(scene: dict) -> None:
    masks = [decode_mask(o["mask"]) for o in scene["objects"]]
    for obj, boxes in zip(scene["objects"], object_obbs(scene, masks, UnitMeshes(Vocabulary.load()))):
        obj.update(boxes)


def test_export_bytes_are_deterministic_and_stored_boxes_export_the_same(capsys, tiny_copy, tmp_path):
    assert export(capsys, tiny_copy)[0] == 0
    first = files(tiny_copy / "dota" / SPLIT)
    assert export(capsys, tiny_copy)[0] == 0  # again, into the same folder
    assert files(tiny_copy / "dota" / SPLIT) == first
    for i in range(4):  # store the boxes, as the aerial family's renders do: the export takes them as they are
        edit_json(scene_file(tiny_copy, i), store_boxes)
    assert export(capsys, tiny_copy, "--out", tmp_path / "elsewhere")[0] == 0
    assert files(tmp_path / "elsewhere") == first


def test_gsd_header_and_an_object_without_visible_pixels(capsys, tiny_copy):
    edit_json(scene_file(tiny_copy, 0), lambda s: s.update(gsd=0.25))

    def hide(scene):  # object 1 is not seen at all: no mask box, so its heading box, and difficult
        obj = scene["objects"][1]
        obj.update(mask=encode_mask(np.zeros((128, 128), dtype=bool)), bbox=[0, 0, 0, 0], visible_pixels=0, visible=False)

    edit_json(scene_file(tiny_copy, 1), hide)
    assert export(capsys, tiny_copy)[0] == 0
    folder = tiny_copy / "dota" / SPLIT
    assert rows(folder / "labelTxt" / f"CLEVR-DS_{SPLIT}_000000.txt")[0] == ["imagesource:CLEVR-DS", "gsd:0.25"]
    scene = json.loads(scene_file(tiny_copy, 1).read_text())
    heading = object_obbs(scene, [decode_mask(o["mask"]) for o in scene["objects"]], UnitMeshes(Vocabulary.load()))[1]["heading_obb"]
    corners, _, difficult = rows(folder / "labelTxt" / f"CLEVR-DS_{SPLIT}_000001.txt")[1][1]
    assert corners.tolist() == heading and difficult == 1
    assert rows(folder / "labelTxt-hbb" / f"CLEVR-DS_{SPLIT}_000001.txt")[1][1][0].tolist() == [[0, 0]] * 4


def test_the_dota_reader_gives_the_native_objects(capsys, tiny_copy):
    assert export(capsys, tiny_copy)[0] == 0
    folder = tiny_copy / "dota" / SPLIT
    native = clevr_ds_source(tiny_copy, SPLIT)
    dota = dota_source(folder, read_class_names(folder / "classes.txt"))
    assert dota.classes == native.classes
    assert [(im.name, im.width, im.height) for im in dota.images] == [(im.name, im.width, im.height) for im in native.images]
    for a, b in zip(native.images, dota.images):
        assert [(o.cls, o.box, o.rel_scale, o.ignore) for o in a.objects] == [(o.cls, o.box, o.rel_scale, o.ignore) for o in b.objects]
        assert all(o.area >= n.area for n, o in zip(a.objects, b.objects))  # a polygon holds its pixels' squares
    shutil.rmtree(folder / "labelTxt-hbb")  # without the horizontal labels: the polygons' boxes, as for DOTA's own labels
    plain = dota_source(folder, read_class_names(folder / "classes.txt"))
    assert any(o.box != p.box for a, b in zip(native.images, plain.images) for o, p in zip(a.objects, b.objects))


def test_bench_on_the_export_gives_the_native_figures(capsys, tiny_dataset, tmp_path):
    """Every method, every bucket: same metrics, labels and saved scores (with the same buckets, which export prints)."""
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    assert export(capsys, root)[0] == 0
    folder = root / "dota" / SPLIT
    common = ["--checkpoint", make_checkpoint(tmp_path / "fusion.pt", k=2), "--cache-dir", tmp_path / "cache", "--model", "all"]
    native = bench(capsys, tmp_path / "native", "--data", root, "--split", SPLIT, *common)
    dota = bench(capsys, tmp_path / "dota", "--dota", folder, "--classes", folder / "classes.txt", "--buckets", HINT_BUCKETS, *common)
    assert len(native) == len(method_names()) and native["clip"]["metrics"]["overall"]["n_queries"] > 0
    assert_same_runs(native, dota)
    assert {r["dataset"] for r in dota.values()} == {"DOTA"}
    shutil.rmtree(folder / "labelTxt-hbb")  # the oracle's crops are the boxes: the polygons' boxes give other scores
    plain = bench(capsys, tmp_path / "plain", "--dota", folder, "--classes", folder / "classes.txt", "--buckets", HINT_BUCKETS,
                  *common[:4], "--model", "oracle-crop")  # fmt: skip
    assert not np.array_equal(plain["oracle-crop"]["saved"]["scores"], native["oracle-crop"]["saved"]["scores"])


def one_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code != 0 and "Traceback" not in err and lines[-1].startswith("error: "), err
    assert all(line.startswith("warning:") for line in lines[:-1]), err
    return lines[-1]


def _other_size_mask(root: Path) -> None:
    edit_json(scene_file(root, 2), lambda s: s["objects"][0].update(mask=encode_mask(np.zeros((64, 64), dtype=bool))))


@pytest.mark.parametrize(
    "spoil, args, message",
    [
        (None, ["--split", "nope"], "no split 'nope'"),
        (lambda root: scene_file(root, 3).unlink(), [], "is incomplete: missing CLEVR-DS_val_000003.json"),
        (_other_size_mask, [], "CLEVR-DS_val_000002.png: object 0: mask is 64x64, its image 128x128"),
        (lambda root: edit_json(scene_file(root, 0), lambda s: s.update(gsd=-1.0)), [], "gsd -1.0 is not a positive number"),
        (lambda root: edit_json(scene_file(root, 0), lambda s: s.update(gsd="0.3")), [], "gsd: expected integer or number"),
        (lambda root: edit_json(scene_file(root, 0), lambda s: s["objects"][0].update(obb=[[0, 0]])), [], "objects[0].obb: expected a list of 4"),
        (lambda root: edit_json(scene_file(root, 0), lambda s: s["objects"][0].update({"class": "pink cube"})), [],
         "class 'pink cube' is not in the split's vocabulary"),
        (lambda root: (root / "dota").symlink_to(root.parent, target_is_directory=True), [], "leaves"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(capsys, tiny_copy, spoil, args, message):
    if spoil:
        spoil(tiny_copy)
    before = files(tiny_copy.parent)
    code, out, err = run(capsys, "export", tiny_copy, "--format", "dota", *(args or ["--split", SPLIT]))
    assert message in one_line(code, err) and out == ""
    assert files(tiny_copy.parent) == before


def test_allow_incomplete_exports_what_is_there(capsys, tiny_copy):
    scene_file(tiny_copy, 3).unlink()
    code, _, err = export(capsys, tiny_copy, "--allow-incomplete")
    assert code == 0 and err == "warning: split 'val': exported 3 of 4 scenes (incomplete)\n"
    assert sorted(p.name for p in (tiny_copy / "dota" / SPLIT / "images").iterdir()) == [f"CLEVR-DS_{SPLIT}_00000{i}.png" for i in range(3)]


def test_output_problems_are_one_line_and_write_nothing(capsys, tiny_copy, tmp_path):
    blocked = file_in_the_way(tmp_path)
    assert str(blocked.parent) in one_line(*export(capsys, tiny_copy, "--out", blocked)[::2])
    assert "--out goes with --format dota and one split" in one_line(*run(capsys, "export", tiny_copy, "--format", "coco", "--out", tmp_path / "x")[::2])
    foreign = tmp_path / "mine"
    (foreign / "images").mkdir(parents=True)
    (foreign / "images" / "P0001.png").write_bytes(b"someone else's image")
    before = files(tmp_path)
    line = one_line(*export(capsys, tiny_copy, "--out", foreign)[::2])
    assert f"{foreign} holds files that are not of split 'val' (images/P0001.png); export into an empty folder" in line
    assert files(tmp_path) == before


def test_the_reader_matches_horizontal_to_oriented_labels(capsys, tiny_copy):
    assert export(capsys, tiny_copy)[0] == 0
    folder = tiny_copy / "dota" / SPLIT
    classes = read_class_names(folder / "classes.txt")
    label = folder / "labelTxt-hbb" / f"CLEVR-DS_{SPLIT}_000001.txt"
    text = label.read_text()
    label.write_text(text.replace(" 0\n", " 1\n", 1))  # one object difficult in one file only
    with pytest.raises(ValueError, match=r"CLEVR-DS_val_000001.txt: its objects \(category, difficult\) are not those of"):
        dota_source(folder, classes)
    label.unlink()
    with pytest.raises(ValueError, match="images/ and labelTxt-hbb/ do not match at CLEVR-DS_val_000001.txt"):
        dota_source(folder, classes)


def test_dotas_own_horizontal_labels_give_the_polygons_boxes(tmp_path):
    """DOTA's HBB labels are the polygons' axis-aligned boxes: with or without them, the same objects."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("RGB", (400, 200), (90, 90, 90)).save(tmp_path / "images" / "P0001.png")
    polygons = [("10 20 50 20 50 40 10 40", "small-vehicle", 0), ("100 0 140 40 100 80 60 40", "plane", 1)]
    for folder, boxes in (("labelTxt", [p for p, _, _ in polygons]), ("labelTxt-hbb", ["10 20 50 20 50 40 10 40", "60 0 140 0 140 80 60 80"])):
        (tmp_path / folder).mkdir()
        lines = [f"{b} {c} {d}" for b, (_, c, d) in zip(boxes, polygons)]
        (tmp_path / folder / "P0001.txt").write_text("imagesource:GoogleEarth\ngsd:0.146\n" + "\n".join(lines) + "\n")
    with_hbb = dota_source(tmp_path).images[0].objects
    shutil.rmtree(tmp_path / "labelTxt-hbb")
    assert with_hbb == dota_source(tmp_path).images[0].objects

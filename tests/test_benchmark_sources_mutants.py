"""benchmark.sources on hand-made COCO, DOTA and CLEVR-DS folders (issue #15 item 5: mutation testing).

Oracles: the rules of the module docstring (rel_scale = longest box side / longer image side, crowd /
difficult / invisible objects ignored, one-line DatasetError naming the file), hand-computed boxes,
shoelace areas and log-even bucket edges, and hashlib for the content hash.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from PIL import Image

from benchmark.buckets import Bucket
from benchmark.sources import DOTA_CLASSES, clevr_ds_source, coco_source, dota_source, image_size
from clevr_ds.dataset import DatasetError
from tests.benchmark_fixtures import make_dataset, obj


def png(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 90, 90)).save(path)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def coco(root: Path, images, annotations, categories) -> Path:
    return write(root / "instances_val2017.json", json.dumps({"images": images, "annotations": annotations,
                                                                "categories": categories}))


def test_coco_source_fields_order_buckets_and_hash(tmp_path):
    png(tmp_path / "a.png", (40, 30))
    png(tmp_path / "sub" / "b.png", (100, 200))
    images = [{"id": 5, "file_name": "sub/b.png", "width": 100, "height": 200}, {"id": 2, "file_name": "a.png", "width": 40, "height": 30}]
    annotations = [
        {"image_id": 2, "category_id": 9, "bbox": [1, 2, 10, 4], "area": 30},  # 10 / 40 = 0.25
        {"image_id": 5, "category_id": 3, "bbox": [0, 0, 5, 20], "area": 70.5, "iscrowd": 0},  # 20 / 200 = 0.1
        {"image_id": 5, "category_id": 9, "bbox": [0, 0, 200, 1], "area": 1, "iscrowd": 1},  # crowd: ignored
    ]
    path = coco(tmp_path, images, annotations, [{"id": 9, "name": "dog"}, {"id": 3, "name": "cat"}])
    source = coco_source(path, tmp_path)
    assert (source.dataset, source.split, source.classes) == ("COCO", "val2017", ("cat", "dog"))
    assert source.n_images_expected == 2 and [im.name for im in source.images] == ["sub/b.png", "a.png"]
    assert source.image_paths == [tmp_path / "sub" / "b.png", tmp_path / "a.png"]
    b, a = source.images
    assert (b.width, b.height, a.width, a.height) == (100, 200, 40, 30)
    (dog,) = a.objects
    assert (dog.cls, dog.box, dog.area, dog.rel_scale, dog.ignore) == ("dog", (1.0, 2.0, 10.0, 4.0), 30.0, 0.25, False)
    assert isinstance(dog.area, float) and all(isinstance(v, float) for v in dog.box)
    cat, crowd = b.objects
    assert (cat.cls, cat.area, cat.rel_scale, cat.ignore) == ("cat", 70.5, 0.1, False)
    assert crowd.ignore and crowd.rel_scale == 1.0
    # buckets: 3 log-even over the non-ignored scales 0.1 .. 0.25
    r = (0.25 / 0.1) ** (1 / 3)
    edges = [source.default_buckets[0].lo] + [bk.hi for bk in source.default_buckets]
    assert edges == pytest.approx([0.1, 0.1 * r, 0.1 * r * r, 0.25])
    data = json.loads(path.read_text())
    head = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    h = hashlib.sha256(head)
    for p in (tmp_path / "sub" / "b.png", tmp_path / "a.png"):
        h.update(hashlib.sha256(p.read_bytes()).digest())
    assert source.content_hash == h.hexdigest()
    renamed = coco_source(path, tmp_path, ["a cat", "a dog"])
    assert renamed.classes == ("a cat", "a dog") and renamed.images[1].objects[0].cls == "a dog"


def test_coco_scales_beyond_one_and_single_scale_give_no_or_clipped_buckets(tmp_path):
    png(tmp_path / "a.png", (40, 30))
    images = [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}]
    cats = [{"id": 1, "name": "x"}]
    one = coco_source(coco(tmp_path, images, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 8, 8], "area": 1}], cats), tmp_path)
    assert one.default_buckets == ()  # one scale: lo == hi
    none = coco_source(coco(tmp_path, images, [], cats), tmp_path)
    assert none.default_buckets == () and none.images[0].objects == ()
    big = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "area": 1},
           {"image_id": 1, "category_id": 1, "bbox": [0, 0, 80, 4], "area": 1},  # rel_scale 2: clipped to 1
           {"image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 0], "area": 0}]  # rel_scale 0: left out
    buckets = coco_source(coco(tmp_path, images, big, cats), tmp_path).default_buckets
    assert buckets[0].lo == pytest.approx(0.1) and buckets[-1].hi == 1.0 and len(buckets) == 3


@pytest.mark.parametrize(
    "images, annotations, categories, message",
    [
        ([{"id": 1, "file_name": "a.png", "width": 40, "height": 30}] * 2, [], [{"id": 1, "name": "x"}], "image ids are not unique"),
        ([{"id": 1, "file_name": "a.png", "width": 40, "height": 30}], [{"image_id": 4, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1}],
         [{"id": 1, "name": "x"}], "annotations[0]: unknown image_id 4 or category_id 1"),
        ([{"id": 1, "file_name": "a.png", "width": 40, "height": 30}], [], [{"id": 1, "name": "x"}, {"id": 2, "name": "x"}],
         "COCO val2017: class names must be unique"),
        ([], [], [{"id": 1, "name": "x"}], "COCO val2017: no images"),
        ([{"id": 1, "file_name": "a.png", "width": 40}], [], [], "images[0]: missing keys height"),
    ],
)
def test_malformed_coco_names_the_problem(tmp_path, images, annotations, categories, message):
    png(tmp_path / "a.png")
    with pytest.raises(DatasetError) as e:
        coco_source(coco(tmp_path, images, annotations, categories), tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_coco_class_override_must_match_the_categories(tmp_path):
    png(tmp_path / "a.png")
    path = coco(tmp_path, [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}], [], [{"id": 1, "name": "x"}])
    with pytest.raises(DatasetError, match=r"^2 class names given for the 1 categories of .*instances_val2017\.json$"):
        coco_source(path, tmp_path, ["a", "b"])


def test_coco_missing_image_file_is_named(tmp_path):
    path = coco(tmp_path, [{"id": 1, "file_name": "gone.png", "width": 40, "height": 30}], [], [{"id": 1, "name": "x"}])
    with pytest.raises(DatasetError, match=r"^cannot read .*gone\.png: "):
        coco_source(path, tmp_path)


def dota(root: Path, labels: dict[str, str], sizes: dict[str, tuple[int, int]] | None = None) -> Path:
    for name, text in labels.items():
        png(root / "images" / f"{name}.png", (sizes or {}).get(name, (400, 200)))
        write(root / "labelTxt" / f"{name}.txt", text)
    return root


def test_dota_polygons_give_boxes_shoelace_areas_and_sorted_images(tmp_path):
    root = dota(tmp_path / "part1", {
        "P2": "gsd: 0.5\n0 0 40 0 40 20 0 20 ship 0\n",
        "P1": "imagesource:GoogleEarth\n10 10 30 10 20 40 20 40 large_vehicle 1\n  \n5 5 25 5 25 45 5 45 harbor\n",
    }, {"P1": (100, 50)})  # fmt: skip
    source = dota_source(root)
    assert (source.dataset, source.split, source.classes) == ("DOTA", "part1", DOTA_CLASSES)
    assert [im.name for im in source.images] == ["P1.png", "P2.png"]
    p1, p2 = source.images
    assert (p1.width, p1.height) == (100, 50)
    vehicle, harbor = p1.objects
    assert vehicle.cls == "large vehicle" and vehicle.ignore
    assert vehicle.box == (10, 10, 20, 30) and vehicle.area == pytest.approx(300.0)  # triangle (10,10),(30,10),(20,40)
    assert vehicle.rel_scale == pytest.approx(30 / 100)
    assert (harbor.cls, harbor.box, harbor.area, harbor.ignore) == ("harbor", (5, 5, 20, 40), 800.0, False)
    (ship,) = p2.objects
    assert (ship.cls, ship.area, ship.rel_scale, ship.ignore) == ("ship", 800.0, 0.1, False)
    h = hashlib.sha256(json.dumps({"images": ["P1.png", "P2.png"], "classes": DOTA_CLASSES}).encode())
    for name in ("P1", "P2"):
        for f in (root / "labelTxt" / f"{name}.txt", root / "images" / f"{name}.png"):
            h.update(hashlib.sha256(f.read_bytes()).digest())
    assert source.content_hash == h.hexdigest()
    assert source.default_buckets[0].lo == pytest.approx(0.1) and source.default_buckets[-1].hi == pytest.approx(0.4)


def test_dota_with_own_classes(tmp_path):
    root = dota(tmp_path / "d", {"A": "0 0 4 0 4 4 0 4 hot-air_balloon 0\n"})
    assert dota_source(root, ["hot air balloon", "kite"]).images[0].objects[0].cls == "hot air balloon"
    with pytest.raises(DatasetError, match=r"A\.txt:1: category 'hot-air_balloon' is not one of the classes"):
        dota_source(root)


def test_dota_layout_errors(tmp_path):
    with pytest.raises(DatasetError, match="expected the folders images/ and labelTxt/ of a DOTA split"):
        dota_source(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="expected the folders"):
        dota_source(tmp_path)
    (tmp_path / "labelTxt").mkdir()
    write(tmp_path / "images" / "notes.txt", "not an image")  # other suffixes are not images
    with pytest.raises(DatasetError, match=r"DOTA \w+: no images"):
        dota_source(tmp_path)
    png(tmp_path / "images" / "Z.PNG")
    write(tmp_path / "labelTxt" / "Z.txt", "")
    assert [im.name for im in dota_source(tmp_path).images] == ["Z.PNG"]


def test_broken_image_and_label_are_named(tmp_path):
    bad = write(tmp_path / "x.png", "not a png")
    with pytest.raises(DatasetError, match=r"^cannot read image .*x\.png: "):
        image_size(bad)
    assert image_size(png(tmp_path / "y.png", (7, 3))) == (7, 3)
    root = dota(tmp_path / "d", {"A": ""})
    (root / "labelTxt" / "A.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(DatasetError, match=r"^cannot read .*A\.txt: "):
        dota_source(root)


def test_dota_bad_line_message_quotes_the_format(tmp_path):
    root = dota(tmp_path / "d", {"A": "1 2 3\n"})
    with pytest.raises(DatasetError) as e:
        dota_source(root)
    assert str(e.value).endswith("A.txt:1: expected 'x1 y1 x2 y2 x3 y3 x4 y4 category difficult', got '1 2 3'")
    root = dota(tmp_path / "e", {"A": "0 0 1 0 1 1 0 1 ship 0 extra\n"})
    with pytest.raises(DatasetError, match="A.txt:1: expected"):
        dota_source(root)
    root = dota(tmp_path / "f", {"A": "0 0 1 0 1 1 0 inf ship 0\n"})
    with pytest.raises(DatasetError, match="A.txt:1: expected"):
        dota_source(root)


def test_clevr_ds_source_reads_the_split(tmp_path):
    root = make_dataset(tmp_path / "ds", [[obj("red cube", 0.05), obj("blue sphere", 0.2, visible=False)], []],
                        split="val", scales="0.01-0.1,0.1-0.3")  # fmt: skip
    source = clevr_ds_source(root, "val")
    assert (source.dataset, source.split, source.n_images_expected) == ("CLEVR-DS", "val", 2)
    assert source.default_buckets == (Bucket(0.01, 0.1), Bucket(0.1, 0.3))
    assert len(source.classes) == 24 and source.classes[0] == "gray cube"
    cube, sphere = source.images[0].objects
    assert (cube.cls, cube.rel_scale, cube.area, cube.ignore, sphere.ignore) == ("red cube", 0.05, 100, False, True)
    assert cube.box == (2, 2, 3, 3) and source.images[0].name.endswith(".png") and source.images[1].objects == ()
    (root / "images" / "val" / source.images[1].name).unlink()
    with pytest.raises(DatasetError) as e:
        clevr_ds_source(root, "val")
    assert "incomplete" in str(e.value) and str(e.value).endswith("; re-run render or pass --allow-incomplete")
    partial = clevr_ds_source(root, "val", allow_incomplete=True)
    assert len(partial.images) == 1 and partial.n_images_expected == 2
    (root / "images" / "val" / source.images[0].name).unlink()
    with pytest.raises(DatasetError, match=r"^split 'val' of .* has no finished scenes$"):
        clevr_ds_source(root, "val", allow_incomplete=True)
    assert math.isfinite(cube.rel_scale)


# --------------------------------------------------------------------------- fast stand-ins for tests/test_benchmark_sources.py
# (that file runs `bench` end to end, ~50 s a mutant; mutation_check.sh leaves it out of this module's list)


def test_source_spec_defaults_and_which_flags_go_together(tmp_path):
    from benchmark.sources import SourceSpec

    spec = SourceSpec()
    assert (spec.data, spec.split, spec.coco, spec.image_root, spec.dota, spec.classes_file) == (None, "test", None, None, None, None)
    assert not spec.given
    assert SourceSpec(data=tmp_path).given and SourceSpec(dota=tmp_path).given
    assert SourceSpec(coco=tmp_path, image_root=tmp_path).given
    assert SourceSpec(coco=tmp_path, image_root=tmp_path, classes_file=tmp_path).given  # --classes with --coco: fine
    assert SourceSpec(dota=tmp_path, classes_file=tmp_path).given
    for kwargs, message in [
        ({"coco": tmp_path, "image_root": tmp_path, "dota": tmp_path}, "--coco and --dota exclude each other"),
        ({"coco": tmp_path, "dota": tmp_path}, "--coco and --dota exclude each other"),
        ({"coco": tmp_path}, "--coco and --image-root go together"),
        ({"image_root": tmp_path}, "--coco and --image-root go together"),
        ({"image_root": tmp_path, "dota": tmp_path}, "--coco and --image-root go together"),
        ({"classes_file": tmp_path}, "--classes needs --coco or --dota (a CLEVR-DS split has its vocabulary)"),
        ({"data": tmp_path, "classes_file": tmp_path}, "--classes needs --coco or --dota"),
    ]:
        with pytest.raises(ValueError) as e:
            SourceSpec(**kwargs)
        assert str(e.value).startswith(message), kwargs


def test_source_spec_opens_the_named_source(tmp_path):
    from benchmark.sources import SourceSpec

    png(tmp_path / "c" / "a.png", (40, 30))
    path = coco(tmp_path / "c", [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
                [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 8], "area": 9}], [{"id": 1, "name": "x"}])  # fmt: skip
    names = write(tmp_path / "names.txt", "a thing\n")
    opened = SourceSpec(coco=path, image_root=tmp_path / "c").open()
    assert (opened.dataset, opened.classes, opened.images[0].objects[0].rel_scale) == ("COCO", ("x",), 0.2)
    assert SourceSpec(coco=path, image_root=tmp_path / "c", classes_file=names).open().classes == ("a thing",)
    root = dota(tmp_path / "d", {"A": "0 0 4 0 4 4 0 4 kite 0\n"})
    assert SourceSpec(dota=root, classes_file=write(tmp_path / "k.txt", "kite\n")).open().classes == ("kite",)
    assert SourceSpec(dota=dota(tmp_path / "e", {"A": "0 0 4 0 4 4 0 4 ship 0\n"})).open().classes == DOTA_CLASSES
    ds = make_dataset(tmp_path / "ds", [[obj("red cube", 0.05)], []], split="val")
    assert SourceSpec(data=ds, split="val").open().split == "val"
    (ds / "images" / "val" / clevr_ds_source(ds, "val").images[1].name).unlink()
    with pytest.raises(DatasetError, match="incomplete"):
        SourceSpec(data=ds, split="val").open()
    assert len(SourceSpec(data=ds, split="val").open(allow_incomplete=True).images) == 1


def test_dota_unmatched_names_are_listed_sorted_ten_at_most(tmp_path):
    png(tmp_path / "images" / "P0001.png")
    write(tmp_path / "labelTxt" / "P0002.txt", "")
    with pytest.raises(DatasetError) as e:
        dota_source(tmp_path)
    assert str(e.value) == f"{tmp_path}: images/ and labelTxt/ do not match at P0001.txt, P0002.txt"
    for i in range(3, 13):  # 12 unmatched label files in all: the first 10 (sorted) are named
        write(tmp_path / "labelTxt" / f"P{i:04d}.txt", "")
    with pytest.raises(DatasetError) as e:
        dota_source(tmp_path)
    assert str(e.value).endswith("do not match at " + ", ".join(f"P{i:04d}.txt" for i in range(1, 11)))
    write(tmp_path / "labelTxt" / "readme.md", "")  # not a label file: not listed
    with pytest.raises(DatasetError) as e:
        dota_source(tmp_path)
    assert "readme" not in str(e.value)


def test_coco_names_must_be_plain_and_stay_in_the_root(tmp_path):
    png(tmp_path / "outside.png")
    root = tmp_path / "root"
    for name, message in [("../a.png", "images[0]: file_name '..' is not a plain name"),
                          ("/etc/passwd", "images[0]: file_name '' is not a plain name"),
                          ("sub//a.png", "file_name '' is not a plain name")]:  # fmt: skip
        path = coco(root, [{"id": 1, "file_name": name, "width": 40, "height": 30}], [], [{"id": 1, "name": "x"}])
        with pytest.raises(ValueError) as e:
            coco_source(path, root)
        assert message in str(e.value) and str(e.value).startswith(f"{path}: images[0]: ")
    (root / "a.png").symlink_to(tmp_path / "outside.png")
    path = coco(root, [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}], [], [{"id": 1, "name": "x"}])
    with pytest.raises(ValueError, match=r"images\[0\]: path .*a\.png leaves "):
        coco_source(path, root)


def test_coco_schema_problems_name_the_file_and_field(tmp_path):
    png(tmp_path / "a.png")
    image = {"id": 1, "file_name": "a.png", "width": 40, "height": 30}
    for images, annotations, message in [
        ([image], [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3], "area": 1}], "annotations[0].bbox: expected a list of 4"),
        ([{**image, "width": "40"}], [], "images[0].width: expected integer"),
    ]:
        path = coco(tmp_path, images, annotations, [{"id": 1, "name": "x"}])
        with pytest.raises(DatasetError) as e:
            coco_source(path, tmp_path)
        assert str(e.value).startswith(f"{path}: {message}")


def test_clevr_ds_source_defaults_the_dataset_name_and_hashes_the_finished_scenes(tmp_path):
    from clevr_ds.dataset import meta_path, scene_path, split_hash

    root = make_dataset(tmp_path / "ds", [[obj("red cube", 0.05)], [obj("blue sphere", 0.02)]], split="val")
    meta = json.loads(meta_path(root, "val").read_text())
    del meta["dataset"]  # optional in a split's meta: the name is CLEVR-DS then
    meta_path(root, "val").write_text(json.dumps(meta))
    source = clevr_ds_source(root, "val")
    assert source.dataset == "CLEVR-DS" and source.content_hash == split_hash(root, "val")
    assert source.default_buckets == (Bucket(0.01, pytest.approx(0.01 * 10 ** (1 / 3))),
                                      Bucket(pytest.approx(0.01 * 10 ** (1 / 3)), pytest.approx(0.01 * 10 ** (2 / 3))),
                                      Bucket(pytest.approx(0.01 * 10 ** (2 / 3)), 0.1))  # fmt: skip
    (root / "images" / "val" / source.images[1].name).unlink()
    partial = clevr_ds_source(root, "val", allow_incomplete=True)  # the hash covers the finished scene only
    first_scene = json.loads(scene_path(root, "val", 0).read_text())
    assert partial.content_hash == split_hash(root, "val", [first_scene]) != source.content_hash


def test_missing_image_content_names_the_file_and_the_reason(tmp_path):
    path = coco(tmp_path, [{"id": 1, "file_name": "gone.png", "width": 40, "height": 30}], [], [{"id": 1, "name": "x"}])
    with pytest.raises(DatasetError) as e:
        coco_source(path, tmp_path)
    assert str(e.value) == f"cannot read {tmp_path / 'gone.png'}: No such file or directory"


def test_dota_names_fold_runs_of_dashes_underscores_and_spaces(tmp_path):
    root = dota(tmp_path / "d", {"A": "0 0 4 0 4 4 0 4 Small__-_vehicle 0\n0 0 4 0 4 4 0 4 small-vehicle 0\n"})
    assert [o.cls for o in dota_source(root, [" Small vehicle ", "small vehicle"]).images[0].objects] == \
        [" Small vehicle ", "small vehicle"]  # fmt: skip


def test_dota_difficult_flag_and_long_bad_lines(tmp_path):
    root = dota(tmp_path / "d", {"A": "0 0 4 0 4 4 0 4 ship 2\n0 0 4 0 4 4 0 4 ship 0\n0 0 8 0 8 8 0 8 ship\n"})
    assert [o.ignore for o in dota_source(root).images[0].objects] == [True, False, False]
    line = "1 2 3 " + "x" * 100
    root = dota(tmp_path / "e", {"A": f"gsd:1\n\n{line}\n"})
    with pytest.raises(DatasetError) as e:
        dota_source(root)
    assert str(e.value).endswith(f"A.txt:3: expected 'x1 y1 x2 y2 x3 y3 x4 y4 category difficult', got {line[:80]!r}")
    root = dota(tmp_path / "f", {"A": "0 0 4 0 4 4 0 4 ship x\n"})  # difficult must be an integer
    with pytest.raises(DatasetError, match=r"A\.txt:1: expected"):
        dota_source(root)


def test_default_dota_classes_are_the_devkit_categories_in_order(tmp_path):
    # DOTA-v1.5 label names as the devkit writes them (hyphenated), in its category order
    devkit = ["plane", "baseball-diamond", "bridge", "ground-track-field", "small-vehicle", "large-vehicle", "ship",
              "tennis-court", "basketball-court", "storage-tank", "soccer-ball-field", "roundabout", "harbor",
              "swimming-pool", "helicopter", "container-crane"]  # fmt: skip
    root = dota(tmp_path / "d", {"A": "".join(f"0 0 4 0 4 4 0 4 {name} 0\n" for name in devkit)})
    source = dota_source(root)
    assert source.classes == tuple(name.replace("-", " ") for name in devkit)
    assert [o.cls for o in source.images[0].objects] == [name.replace("-", " ") for name in devkit]


def test_clevr_ds_source_images_name_paths_sizes_and_dataset(tmp_path):
    from clevr_ds.dataset import meta_path

    root = make_dataset(tmp_path / "ds", [[obj("red cube", 0.05)]], split="val", side=48)
    meta = json.loads(meta_path(root, "val").read_text())
    meta_path(root, "val").write_text(json.dumps({**meta, "dataset": "CLEVR-DS-mini"}))
    source = clevr_ds_source(root, "val")
    (image,) = source.images
    assert source.dataset == "CLEVR-DS-mini"
    assert image.path == root / "images" / "val" / image.name and (image.width, image.height) == (48, 48)
    (root / "images" / "val" / image.name).unlink()
    with pytest.raises(DatasetError) as e:
        clevr_ds_source(root, "val")
    assert str(e.value) == f"split 'val' of {root} is incomplete: missing {image.name}; re-run render or pass --allow-incomplete"


def test_clevr_ds_source_checks_what_the_benchmark_reads(tmp_path):
    from clevr_ds.dataset import meta_path, scene_path

    root = make_dataset(tmp_path / "ds", [[obj("red cube", 0.05)]], split="val")
    meta = json.loads(meta_path(root, "val").read_text())
    del meta["num_images"]
    meta_path(root, "val").write_text(json.dumps(meta))
    with pytest.raises(DatasetError) as e:  # a clean one-line error, not a KeyError further on
        clevr_ds_source(root, "val")
    assert str(e.value) == f"{meta_path(root, 'val')}: missing keys num_images"
    root = make_dataset(tmp_path / "ds2", [[obj("red cube", 0.05)]], split="val")
    scene = json.loads(scene_path(root, "val", 0).read_text())
    del scene["objects"][0]["visible_pixels"]
    scene_path(root, "val", 0).write_text(json.dumps(scene))
    with pytest.raises(DatasetError) as e:
        clevr_ds_source(root, "val")
    assert str(e.value).endswith("objects[0]: missing keys visible_pixels") and "\n" not in str(e.value)


def test_coco_hash_covers_the_annotations_in_ascii_json(tmp_path):
    png(tmp_path / "a.png")
    path = coco(tmp_path, [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}], [], [{"id": 1, "name": "café"}])
    source = coco_source(path, tmp_path)
    head = json.dumps(json.loads(path.read_text()), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert b"caf\\u00e9" in head  # non-ASCII names are escaped in the hashed text
    expected = hashlib.sha256(head)
    expected.update(hashlib.sha256((tmp_path / "a.png").read_bytes()).digest())
    assert source.classes == ("café",) and source.content_hash == expected.hexdigest()


def test_dota_image_names_must_be_plain_and_images_keep_their_paths(tmp_path):
    root = dota(tmp_path / "d", {"A": "0 0 4 0 4 4 0 4 ship 0\n"})
    assert dota_source(root).images[0].path == root / "images" / "A.png"
    png(root / "images" / "bad name.png")
    write(root / "labelTxt" / "bad name.txt", "")
    with pytest.raises(ValueError) as e:
        dota_source(root)
    assert str(e.value) == "image name 'bad name.png' is not a plain name (letters, digits, '.', '_', '-')"


def test_a_coco_file_name_that_is_not_text_is_refused_by_name(tmp_path):
    from benchmark.sources import _relative

    with pytest.raises(ValueError) as e:
        _relative(tmp_path, 5, "x.json: images[0]")
    assert str(e.value) == "x.json: images[0]: file_name 5 is not a plain name (letters, digits, '.', '_', '-')"
    assert _relative(tmp_path, "sub/a.png", "x.json: images[0]") == tmp_path / "sub" / "a.png"


def test_default_bucket_count_of_coco_and_dota_sources(tmp_path, monkeypatch):
    import benchmark.sources as sources

    assert sources.DEFAULT_BUCKETS == 3
    root = dota(tmp_path / "d", {"A": "0 0 4 0 4 4 0 4 ship 0\n0 0 40 0 40 40 0 40 ship 0\n"}, {"A": (400, 400)})
    monkeypatch.setattr(sources, "DEFAULT_BUCKETS", 2)  # scales 0.01 and 0.1: two log-even buckets meet at 10**-1.5
    buckets = dota_source(root).default_buckets
    assert [(b.lo, b.hi) for b in buckets] == [(0.01, pytest.approx(10**-1.5)), (pytest.approx(10**-1.5), 0.1)]

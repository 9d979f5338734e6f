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

from benchmark.protocol import Bucket
from benchmark.sources import DOTA_CLASSES, clevr_ds_source, coco_source, dota_source, image_size, read_classes
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


def test_read_classes_skips_blank_lines_and_strips(tmp_path):
    assert read_classes(write(tmp_path / "c.txt", "  red cube \n\n\t\nblue sphere\n")) == ["red cube", "blue sphere"]
    with pytest.raises(DatasetError, match=r"^cannot read classes file .*nope\.txt: "):
        read_classes(tmp_path / "nope.txt")


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

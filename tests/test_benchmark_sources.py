"""The data-source seam is exact: a CLEVR-DS split benchmarked natively, through its COCO export and as a
DOTA folder gives identical runs; COCO sets of any image size run every method; readers refuse bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.methods import method_names
from benchmark.results import load_run
from benchmark.sources import clevr_ds_source, coco_source, dota_source
from cli import main
from clevr_ds.dataset import DatasetError
from tests.benchmark_fixtures import TINY_BACKBONE, make_checkpoint

SPLIT = "val"
TINY = ["--backbone", TINY_BACKBONE, "--pretrained", "none", "--templates", "short", "--quiet"]
BUCKETS = ["--buckets", "0.1,0.15,0.2,0.3"]
SAME = {"metrics", "n_images", "n_images_expected", "complete", "protocol", "method_settings", "backbone", "pretrained"}


def bench(capsys, out: Path, *args) -> dict[str, dict]:
    """Run `bench` and return its records by method (with the saved scores and labels)."""
    code = main(["bench", "--out", str(out), "--save-scores", *TINY, *[str(a) for a in args]])
    assert code == 0, capsys.readouterr().err
    records = {}
    for path in out.glob("*.json"):
        record = load_run(path)
        with np.load(out / record["scores_file"]) as z:
            record["saved"] = {k: z[k] for k in z.files}
        records[record["method"]] = record
    return records


def assert_same_runs(a: dict[str, dict], b: dict[str, dict]) -> None:
    assert sorted(a) == sorted(b)
    for method in a:
        assert {k: a[method][k] for k in SAME} == {k: b[method][k] for k in SAME}, method
        for key, value in a[method]["saved"].items():
            np.testing.assert_array_equal(value, b[method]["saved"][key], err_msg=f"{method} {key}")


def dota_folder(root: Path, split_root: Path) -> Path:
    """The split as DOTA: images copied, each box a 4-corner polygon, invisible objects difficult."""
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    for image in clevr_ds_source(split_root, SPLIT).images:
        shutil.copy(image.path, root / "images" / image.name)
        lines = ["imagesource:CLEVR-DS", "gsd:0.5"]
        for o in image.objects:
            x, y, w, h = o.box
            corners = [x, y, x + w, y, x + w, y + h, x, y + h]
            lines.append(" ".join(f"{v:g}" for v in corners) + f" {o.cls.replace(' ', '-')} {int(o.ignore)}")
        (root / "labelTxt" / f"{Path(image.name).stem}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def native(tiny_dataset, tmp_path_factory):
    """The native runs of every method on the rendered split, with a shared feature cache."""
    root = tmp_path_factory.mktemp("native")
    checkpoint = make_checkpoint(root / "fusion.pt", k=2)
    return checkpoint, root / "cache"


def test_coco_export_and_dota_folder_give_identical_runs(capsys, tiny_dataset, native, tmp_path):
    checkpoint, cache = native
    scenes = clevr_ds_source(tiny_dataset, SPLIT)
    assert all(not o.ignore for im in scenes.images for o in im.objects)  # so the COCO export holds every object
    common = ["--checkpoint", checkpoint, "--cache-dir", cache, *BUCKETS]
    native_args = ["--data", tiny_dataset, "--split", SPLIT]
    instances = tiny_dataset / "annotations" / f"instances_{SPLIT}.json"
    coco_args = ["--coco", instances, "--image-root", tiny_dataset / "images" / SPLIT]
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(scenes.classes) + "\n")
    dota_args = ["--dota", dota_folder(tmp_path / "dota", tiny_dataset), "--classes", classes]
    runs = bench(capsys, tmp_path / "native", *native_args, "--model", "all", *common)
    assert len(runs) == len(method_names()) and runs["clip"]["metrics"]["overall"]["n_queries"] > 0
    for name, args in (("coco", coco_args), ("dota", dota_args)):
        assert_same_runs(runs, bench(capsys, tmp_path / name, *args, "--model", "all", *common))
    # COCO areas are the visible pixel counts: a pixel threshold leaves out the same objects.
    areas = sorted(o.area for im in scenes.images for o in im.objects)
    threshold = ["--model", "clip,oracle-crop", "--min-visible-pixels", areas[len(areas) // 2], *common]
    thresholded = bench(capsys, tmp_path / "native-threshold", *native_args, *threshold)
    assert (thresholded["clip"]["saved"]["labels_overall"] != runs["clip"]["saved"]["labels_overall"]).any()
    coco = bench(capsys, tmp_path / "coco-threshold", *coco_args, *threshold)
    assert_same_runs(thresholded, coco)
    assert (coco["clip"]["dataset"], coco["clip"]["split"]) == ("COCO", SPLIT)


def reshaped_coco(tiny_dataset: Path, root: Path) -> Path:
    """A COCO set of crops and pads of the rendered images (sizes 128x80, 200x128, 96x160, 128x128);
    objects cut by a crop become crowd regions, the last image's objects are all crowd."""
    source = clevr_ds_source(tiny_dataset, SPLIT)
    frames = [(0, 0, 128, 80), (-40, 0, 200, 128), (16, -16, 96, 160), (0, 0, 128, 128)]  # x, y, w, h in the original
    images, annotations, names = [], [], list(source.classes)
    for i, (image, (fx, fy, fw, fh)) in enumerate(zip(source.images, frames)):
        canvas = Image.new("RGB", (fw, fh), (30, 30, 30))
        with Image.open(image.path) as original:
            canvas.paste(original.convert("RGB"), (-fx, -fy))
        name = f"sub/img{i}.png"
        (root / "sub").mkdir(parents=True, exist_ok=True)
        canvas.save(root / name)
        images.append({"id": 10 + i, "file_name": name, "width": fw, "height": fh})
        for o in image.objects:
            x, y, w, h = o.box
            x0, y0, x1, y1 = max(x - fx, 0), max(y - fy, 0), min(x - fx + w, fw), min(y - fy + h, fh)
            if x1 <= x0 or y1 <= y0:
                continue
            crowd = (x1 - x0, y1 - y0) != (w, h) or i == 3
            annotations.append({"id": len(annotations) + 1, "image_id": 10 + i, "category_id": names.index(o.cls) + 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": o.area, "iscrowd": int(crowd)})  # fmt: skip
    categories = [{"id": q + 1, "name": c} for q, c in enumerate(names)]
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_coco_images_of_any_size_run_every_method(capsys, tiny_dataset, native, tmp_path):
    checkpoint, cache = native
    instances = reshaped_coco(tiny_dataset, tmp_path / "coco")
    source = coco_source(instances, tmp_path / "coco")
    assert [(im.width, im.height) for im in source.images] == [(128, 80), (200, 128), (96, 160), (128, 128)]
    kept = [o.rel_scale for im in source.images for o in im.objects if not o.ignore]
    assert source.default_buckets[0].lo == min(kept) and source.default_buckets[-1].hi == max(kept)
    assert len(source.default_buckets) == 3
    runs = bench(capsys, tmp_path / "out", "--coco", instances, "--image-root", tmp_path / "coco", "--model", "all",
                 "--checkpoint", checkpoint, "--cache-dir", cache)  # fmt: skip
    assert len(runs) == len(method_names()) and all(r["n_images"] == 4 for r in runs.values())
    labels = runs["clip"]["saved"]["labels_overall"]
    for q, cls in enumerate(source.classes):  # crowd instances are neither positive nor negative
        for i, image in enumerate(source.images):
            found = [o.ignore for o in image.objects if o.cls == cls]
            assert labels[q, i] == (0 if not found else 1 if not all(found) else -1), (cls, i)
    oracle = runs["oracle-crop"]["cost"]["vectors_per_image"]
    assert oracle == 1 + len(kept) / 4  # whole image + one crop per non-crowd object


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def small_image(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 90, 90)).save(path)
    return path


def test_dota_labels(tmp_path):
    small_image(tmp_path / "images" / "P0001.png", (400, 200))
    write(tmp_path / "labelTxt" / "P0001.txt", "imagesource:GoogleEarth\ngsd:0.146\n"
          "10 20 50 20 50 40 10 40 small-vehicle 0\n100 0 140 40 100 80 60 40 plane 1\n\n")  # fmt: skip
    (image,) = dota_source(tmp_path).images
    vehicle, plane = image.objects
    assert (vehicle.cls, vehicle.box, vehicle.area, vehicle.rel_scale) == ("small vehicle", (10, 20, 40, 20), 800, 0.1)
    assert not vehicle.ignore
    assert (plane.cls, plane.box, plane.area, plane.ignore) == ("plane", (60, 0, 80, 80), 3200, True)


@pytest.mark.parametrize(
    "line, message",
    [
        ("10 20 50 20 50 40 10 small-vehicle 0", "P0001.txt:2: expected"),
        ("10 20 50 20 50 x 10 40 small-vehicle 0", "P0001.txt:2: expected"),
        ("10 20 50 20 50 40 10 nan plane 0", "P0001.txt:2: expected"),
        ("10 20 50 20 50 40 10 40 spaceship 0", "P0001.txt:2: category 'spaceship'"),
    ],
)
def test_malformed_dota_line_is_named(tmp_path, line, message):
    small_image(tmp_path / "images" / "P0001.png")
    write(tmp_path / "labelTxt" / "P0001.txt", f"gsd:1\n{line}\n")
    with pytest.raises(DatasetError, match=message):
        dota_source(tmp_path)


def test_dota_images_and_labels_must_match(tmp_path):
    small_image(tmp_path / "images" / "P0001.png")
    write(tmp_path / "labelTxt" / "P0002.txt", "")
    with pytest.raises(DatasetError, match="P0001.txt, P0002.txt"):
        dota_source(tmp_path)


def coco_file(root: Path, image: dict | None = None, annotation: dict | None = None) -> Path:
    small_image(root / "a.png")
    image = {"id": 1, "file_name": "a.png", "width": 40, "height": 30, **(image or {})}
    annotation = {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 10, 5], "area": 50, **(annotation or {})}
    data = {"images": [image], "annotations": [annotation], "categories": [{"id": 7, "name": "red cube"}]}
    return write(root / "instances_x.json", json.dumps(data))


def test_coco_reader(tmp_path):
    source = coco_source(coco_file(tmp_path), tmp_path)
    (obj,) = source.images[0].objects
    assert (source.split, source.classes, obj.cls, obj.rel_scale) == ("x", ("red cube",), "red cube", 0.25)
    assert not obj.ignore
    assert coco_source(coco_file(tmp_path), tmp_path, ["a shiny red cube"]).classes == ("a shiny red cube",)
    other = coco_source(coco_file(tmp_path, annotation={"iscrowd": 1}), tmp_path)
    assert other.images[0].objects[0].ignore and other.content_hash != source.content_hash
    with pytest.raises(DatasetError, match="2 class names given for the 1 categories"):
        coco_source(coco_file(tmp_path), tmp_path, ["a", "b"])


@pytest.mark.parametrize(
    "image, annotation, message",
    [
        ({"file_name": "../a.png"}, None, "images[0]: file_name '..' is not a plain name"),
        ({"file_name": "/etc/passwd"}, None, "is not a plain name"),
        (None, {"bbox": [1, 2, 3]}, "instances_x.json: annotations[0].bbox: expected a list of 4"),
        (None, {"category_id": 8}, "annotations[0]: unknown image_id 1 or category_id 8"),
        ({"width": "40"}, None, "images[0].width: expected integer"),
        ({"file_name": "b.png"}, None, "cannot read"),
    ],
)
def test_malformed_coco_is_one_line(capsys, tmp_path, image, annotation, message):
    path = coco_file(tmp_path, image, annotation)
    code = main(["bench", "--coco", str(path), "--image-root", str(tmp_path), "--out", str(tmp_path / "out"),
                 "--model", "clip", *TINY])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and message in err and err.count("\n") == 1


def test_coco_symlink_leaving_the_root_is_refused(tmp_path):
    path = coco_file(tmp_path / "root")
    small_image(tmp_path / "outside.png")
    (tmp_path / "root" / "a.png").unlink()
    (tmp_path / "root" / "a.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(ValueError, match="leaves"):
        coco_source(path, tmp_path / "root")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--coco", "x.json"], "--coco and --image-root go together"),
        (["--coco", "x.json", "--image-root", ".", "--dota", "."], "exclude each other"),
        (["--classes", "c.txt"], "--classes needs --coco or --dota"),
    ],
)
def test_source_options(capsys, tmp_path, args, message):
    code = main(["bench", "--out", str(tmp_path), "--model", "clip", *TINY, *args])
    err = capsys.readouterr().err
    assert code != 0 and message in err and err.count("\n") == 1

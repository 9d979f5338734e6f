"""Data sources of the benchmark: one `Source` per split, read from CLEVR-DS (a folder or its WebDataset shards),
COCO instances or DOTA labels.

The protocol, context and methods see only a Source: image paths and sizes, class names, and per image
its objects (class, [x, y, w, h] box, visible pixels or area, rel_scale = longest box side / longer
image side, and an ignore flag: crowd, difficult or invisible objects are neither positive nor
negative). Every path read from a JSON or label file stays inside its root (`infra.paths`);
malformed files raise DatasetError with one line naming the file (and line).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from clevr_ds.annotate import rel_scale
from clevr_ds.dataset import (DATASET_NAME, DatasetError, finished_scenes, image_path, load_meta, read_class_names,
                              split_hash)  # fmt: skip
from clevr_ds.dota import HBB_LABELS, IMAGES, LABELS, category_key
from clevr_ds.schema import BOX, META_BENCH, NUMBER, SCENE_BENCH, ListOf, problem
from clevr_ds.vocab import Vocabulary
from clevr_ds.wds import read_shard_meta, read_shards
from detailclip.images import IMAGE_SUFFIXES
from infra.jsonio import MiB, read_bounded
from infra.jsonio import read_json as bounded_json
from infra.paths import inside, plain_name

from .buckets import Bucket, default_buckets, log_buckets

DEFAULT_BUCKETS = 3  # log-even buckets over the observed rel_scale range (COCO, DOTA)
# DOTA-v1.5 categories in the devkit's order (v1: all but the last); '-' in label names reads as a space.
DOTA_CLASSES = ("plane", "baseball diamond", "bridge", "ground track field", "small vehicle", "large vehicle", "ship",
                "tennis court", "basketball court", "storage tank", "soccer ball field", "roundabout", "harbor",
                "swimming pool", "helicopter", "container crane")  # fmt: skip
COCO_MAX_BYTES = 1024 * MiB  # COCO train instances are about 450 MiB
MAX_LABEL_BYTES = 64 * MiB  # a DOTA label file: a few KiB
MAX_SIDE = 1 << 31  # image width and height in a COCO file
DOTA_HEADER = re.compile(r"^\s*[A-Za-z_]+\s*:")  # imagesource:..., gsd:...
COCO_SPEC = {
    "images": ListOf({"id": int, "file_name": str, "width": int, "height": int}),
    "annotations": ListOf({"image_id": int, "category_id": int, "bbox": BOX, "area": NUMBER}),
    "categories": ListOf({"id": int, "name": str}),
}


@dataclass(frozen=True)
class SourceObject:
    cls: str
    box: tuple[float, float, float, float]  # [x, y, w, h] px
    area: float  # visible pixels (CLEVR-DS), annotation area (COCO) or polygon area (DOTA)
    rel_scale: float  # longest box side / longer image side
    ignore: bool = False  # crowd, difficult or invisible: neither positive nor negative for its class


@dataclass(frozen=True)
class SourceImage:
    path: Path  # or a member of a WebDataset shard (infra.archive.TarMember), which the image readers take alike
    name: str  # relative to the image root (what score files list)
    width: int
    height: int
    objects: tuple[SourceObject, ...]


@dataclass(frozen=True)
class Source:
    dataset: str
    split: str
    classes: tuple[str, ...]  # the class prompts, in category order
    images: tuple[SourceImage, ...]
    content_hash: str  # SHA-256 of annotations and image content
    default_buckets: tuple[Bucket, ...]
    n_images_expected: int  # images the split promises (CLEVR-DS meta); len(images) elsewhere
    prompts: str | None = None  # the prompt template set the data names (a CLEVR-DS family's), if any
    meta: dict | None = field(default=None, compare=False, repr=False)  # a CLEVR-DS split's meta (folder or shards)

    @property
    def image_paths(self) -> list[Path]:
        return [image.path for image in self.images]


@dataclass(frozen=True)
class SourceSpec:
    """Where a command's data is: a CLEVR-DS split (data, split, or the WebDataset shards wds names: a folder,
    a pattern or a '::' list), COCO instances with their image root, or a DOTA folder; classes_file names the
    classes of COCO or DOTA (one per line)."""

    data: Path | None = None
    split: str = "test"
    coco: Path | None = None
    image_root: Path | None = None
    dota: Path | None = None
    classes_file: Path | None = None
    wds: str | None = None

    def __post_init__(self):
        if self.coco is not None and self.dota is not None:
            raise ValueError("--coco and --dota exclude each other")
        if self.wds is not None and (self.coco is not None or self.dota is not None):
            raise ValueError("--wds excludes --coco and --dota")
        if (self.coco is None) != (self.image_root is None):
            raise ValueError("--coco and --image-root go together")
        if self.classes_file is not None and self.coco is None and self.dota is None:
            raise ValueError("--classes needs --coco or --dota (a CLEVR-DS split has its vocabulary)")

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.data, self.coco, self.dota, self.wds))

    def family(self) -> str | None:
        """The scene family of a CLEVR-DS split, from its folder or its shards ("clevr" when its meta names
        none); None for other data or a split without a readable meta (open() says why)."""
        if self.coco is not None or self.dota is not None or (self.data is None and self.wds is None):
            return None
        try:
            meta = read_shard_meta(self.wds) if self.wds is not None else load_meta(self.data, self.split)
        except DatasetError:
            return None
        return meta.get("family", "clevr")

    def open(self, allow_incomplete: bool = False) -> Source:
        """The Source: --coco, --dota, --wds or the CLEVR-DS split (incomplete only with `allow_incomplete`)."""
        classes = read_class_names(self.classes_file) if self.classes_file is not None else None
        if self.coco is not None:
            return coco_source(self.coco, self.image_root, classes)
        if self.dota is not None:
            return dota_source(self.dota, classes)
        if self.wds is not None:
            return wds_source(self.wds, allow_incomplete)
        return clevr_ds_source(self.data, self.split, allow_incomplete)


def clevr_ds_source(root: Path | str, split: str, allow_incomplete: bool = False) -> Source:
    """A CLEVR-DS split: classes from its vocabulary, buckets from its scales, `visible: false` objects ignored."""
    meta = load_meta(root, split, META_BENCH)
    scenes = finished_scenes(root, split, SCENE_BENCH, allow_incomplete)
    return _split_source(meta, scenes, [image_path(root, s) for s in scenes], split_hash(root, split, scenes))


def wds_source(spec: str, allow_incomplete: bool = False) -> Source:
    """A CLEVR-DS split from its WebDataset shards (`clevr_ds.wds`): the same Source as from its folder, the images
    read from the shards."""
    shards = read_shards(spec, allow_incomplete)
    return _split_source(shards.meta, shards.scenes, shards.images, shards.content_hash())


def _split_source(meta: dict, scenes: list[dict], images: list, content_hash: str) -> Source:
    """The Source of a CLEVR-DS split's meta, scenes and their images (paths or archive members)."""
    records = tuple(
        SourceImage(image, s["image_filename"], s["width"], s["height"], tuple(
            SourceObject(o["class"], tuple(o["bbox"]), o["visible_pixels"], o["rel_scale"], ignore=not o["visible"])
            for o in s["objects"]
        ))
        for s, image in zip(scenes, images)
    )  # fmt: skip
    vocabulary = Vocabulary.from_dict(meta["vocabulary"])
    return Source(meta.get("dataset", DATASET_NAME), meta["split"], tuple(vocabulary.classes), records, content_hash,
                  tuple(default_buckets(meta["scales"])), meta["num_images"], vocabulary.prompts, meta)  # fmt: skip


def coco_source(instances: Path | str, image_root: Path | str, classes: Sequence[str] | None = None) -> Source:
    """COCO instances: categories (by id) are the classes, `classes` overrides their names; crowd is ignored."""
    instances = Path(instances)
    data = bounded_json(instances, "COCO instances file", max_bytes=COCO_MAX_BYTES, error=DatasetError)
    found = _coco_problem(data)
    if found:
        raise DatasetError(f"{instances}: {found}")
    categories = sorted(data["categories"], key=lambda c: c["id"])
    names = [c["name"] for c in categories]
    if classes is not None:
        if len(classes) != len(names):
            raise DatasetError(f"{len(classes)} class names given for the {len(names)} categories of {instances}")
        names = list(classes)
    category = {c["id"]: names[i] for i, c in enumerate(categories)}
    records = {im["id"]: im for im in data["images"]}
    for kind, unique, listed in (("image", records, data["images"]), ("category", category, categories)):
        if len(unique) != len(listed):
            raise DatasetError(f"{instances}: {kind} ids are not unique")
    objects: dict[int, list[SourceObject]] = {i: [] for i in records}
    for i, a in enumerate(data["annotations"]):
        im, cls = records.get(a["image_id"]), category.get(a["category_id"])
        if im is None or cls is None:
            raise DatasetError(f"{instances}: annotations[{i}]: unknown image_id {a['image_id']} "
                               f"or category_id {a['category_id']}")  # fmt: skip
        box = tuple(float(v) for v in a["bbox"])
        scale = rel_scale(box, im["width"], im["height"])
        objects[im["id"]].append(SourceObject(cls, box, float(a["area"]), scale, ignore=bool(a.get("iscrowd", 0))))
    images = tuple(
        SourceImage(_relative(image_root, im["file_name"], f"{instances}: images[{i}]"), im["file_name"],
                    im["width"], im["height"], tuple(objects[im["id"]]))
        for i, im in enumerate(data["images"])
    )  # fmt: skip
    split = instances.stem.removeprefix("instances_")
    head = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return _source("COCO", split, names, images, _content_hash(head, [im.path for im in images]))


def _finite(value: int | float) -> bool:
    """True for a number that converts to a finite float (JSON's 1e400 reads as inf, 10**400 overflows)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _coco_problem(data) -> str | None:
    """The first way `data` breaks COCO_SPEC or holds a value the benchmark cannot use, as one line."""
    found = problem(data, COCO_SPEC)
    if found:
        return found
    for i, im in enumerate(data["images"]):
        if not (1 <= im["width"] <= MAX_SIDE and 1 <= im["height"] <= MAX_SIDE):
            return f"images[{i}]: width and height must lie in [1, {MAX_SIDE}], got {im['width']!r:.20} x {im['height']!r:.20}"
    for i, a in enumerate(data["annotations"]):
        if not all(_finite(v) for v in (*a["bbox"], a["area"])) or min(a["bbox"][2:]) < 0:
            return f"annotations[{i}]: bbox and area must be finite, the box's width and height >= 0"
        if a.get("iscrowd", 0) not in (0, 1):
            return f"annotations[{i}].iscrowd: expected 0 or 1, got {a['iscrowd']!r:.40}"
    return None


def dota_source(root: Path | str, classes: Sequence[str] | None = None) -> Source:
    """DOTA v1/v1.5: ROOT/images/NAME.png with ROOT/labelTxt/NAME.txt; difficult objects are ignored.

    `classes` lists the categories in order (default DOTA_CLASSES); '-' and '_' in label names read as spaces.
    An object's box, and so its rel_scale, is its horizontal box: the matching line of ROOT/labelTxt-hbb/NAME.txt
    where that folder exists (DOTA's HBB labels; a CLEVR-DS export's mask boxes), else the axis-aligned box of its
    polygon (which is how DOTA makes its HBBs); its area is its polygon's."""
    root = Path(root)
    names = tuple(classes or DOTA_CLASSES)
    lookup = {category_key(c): c for c in names}
    if not (root / IMAGES).is_dir() or not (root / LABELS).is_dir():
        raise DatasetError(f"{root}: expected the folders {IMAGES}/ and {LABELS}/ of a DOTA split")
    folders = (LABELS, HBB_LABELS) if (root / HBB_LABELS).is_dir() else (LABELS,)
    image_names = sorted(p.name for p in (root / IMAGES).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for folder in folders:
        label_names = {p.name for p in (root / folder).iterdir() if p.suffix == ".txt"}
        unmatched = sorted({f"{Path(n).stem}.txt" for n in image_names} ^ label_names)
        if unmatched:
            raise DatasetError(f"{root}: {IMAGES}/ and {folder}/ do not match at {', '.join(unmatched[:10])}")
    images, files_read = [], []
    for name in image_names:
        path = inside(root, IMAGES, plain_name(name, "image name"))
        labels = [inside(root, folder, plain_name(f"{Path(name).stem}.txt", "label name")) for folder in folders]
        width, height = image_size(path)
        images.append(SourceImage(path, name, width, height, _dota_objects(labels, width, height, lookup)))
        files_read += [*labels, path]
    head = json.dumps({"images": image_names, "classes": names}).encode()
    return _source("DOTA", root.name, names, tuple(images), _content_hash(head, files_read))


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None


def _dota_rows(label: Path, lookup: dict[str, str]) -> list[tuple[list[float], str, bool]]:
    """(8 polygon coordinates, class, difficult) of each object line of a DOTA label file."""
    data = read_bounded(label, "label file", MAX_LABEL_BYTES, error=DatasetError)
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DatasetError(f"cannot read {label}: {e}") from None
    rows = []
    for n, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens or DOTA_HEADER.match(line):
            continue
        try:
            if len(tokens) not in (9, 10):
                raise ValueError
            coords = [float(v) for v in tokens[:8]]
            difficult = int(tokens[9]) if len(tokens) == 10 else 0
            if not all(math.isfinite(v) for v in coords):
                raise ValueError
        except ValueError:
            expected = "'x1 y1 x2 y2 x3 y3 x4 y4 category difficult'"
            raise DatasetError(f"{label}:{n}: expected {expected}, got {line[:80]!r}") from None
        cls = lookup.get(category_key(tokens[8]))
        if cls is None:
            raise DatasetError(f"{label}:{n}: category {tokens[8]!r} is not one of the classes (see --classes)")
        rows.append((coords, cls, difficult != 0))
    return rows


def _dota_objects(labels: list[Path], width: int, height: int, lookup: dict[str, str]) -> tuple[SourceObject, ...]:
    """The objects of an image: class, difficult flag and shoelace area from its oriented labels `labels[0]`, the
    axis-aligned box of the polygon of its last labels (the horizontal ones `labels[1]` where given), line for line."""
    oriented = _dota_rows(labels[0], lookup)
    horizontal = _dota_rows(labels[-1], lookup) if len(labels) > 1 else oriented
    if [row[1:] for row in horizontal] != [row[1:] for row in oriented]:
        raise DatasetError(f"{labels[-1]}: its objects (category, difficult) are not those of {labels[0]}, line for line")
    objects = []
    for (polygon, cls, difficult), (corners, _, _) in zip(oriented, horizontal):
        xs, ys = corners[0::2], corners[1::2]
        box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        xs, ys = polygon[0::2], polygon[1::2]
        area = abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(4))) / 2
        objects.append(SourceObject(cls, box, area, rel_scale(box, width, height), ignore=difficult))
    return tuple(objects)


def _relative(root: Path | str, name: object, where: str) -> Path:
    """root/name for a '/'-separated relative name of plain parts that stays inside root."""
    parts = name.split("/") if isinstance(name, str) else [name]
    return inside(root, *(plain_name(p, "file_name", where) for p in parts), source=where)


def _content_hash(head: bytes, files: Iterable[Path]) -> str:
    """SHA-256 of `head` followed by the SHA-256 of each file's bytes."""
    h = hashlib.sha256(head)
    for path in files:
        try:
            h.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError as e:
            raise DatasetError(f"cannot read {path}: {e.strerror or e}") from None
    return h.hexdigest()


def _source(dataset: str, split: str, classes: Sequence[str], images: tuple[SourceImage, ...],
            content_hash: str) -> Source:
    """A Source whose default buckets cut the observed rel_scale range log-evenly."""
    if len(set(classes)) != len(classes):
        raise DatasetError(f"{dataset} {split}: class names must be unique")
    if not images:
        raise DatasetError(f"{dataset} {split}: no images")
    scales = [o.rel_scale for im in images for o in im.objects if not o.ignore and o.rel_scale > 0]
    lo, hi = min(scales, default=1.0), min(max(scales, default=1.0), 1.0)
    buckets = tuple(log_buckets(lo, hi, DEFAULT_BUCKETS)) if lo < hi else ()
    return Source(dataset, split, tuple(classes), images, content_hash, buckets, len(images))

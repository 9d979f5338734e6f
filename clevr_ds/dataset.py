"""On-disk layout of a CLEVR-DS folder and the functions that read it.

    OUT/meta/<split>.json                   render configuration of the split (incl. vocabulary)
    OUT/images/<split>/<name>.png           rendered image
    OUT/scenes/<split>/<name>.json          scene annotation (CLEVR keys + CLEVR-DS additions)
    OUT/annotations/instances_<split>.json  COCO instances export
    OUT/annotations/manifest_<split>.csv    one row per image
    OUT/CLEVR_<split>_scenes.json           CLEVR's scene file (written by `export --format clevr` only)

A scene is finished when its scene JSON exists: it is written (atomically) after its image.
Names read from files are untrusted (`infra.paths`): split and file names must be plain names,
and a meta, scene, image or export file that resolves (symlinks followed) outside the root is not
read. Writers refuse to write through a folder that leaves the root (`written_folders`, and the
`root` of infra.atomic's writers).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

from infra.atomic import TMP_MARK
from infra.errors import ToolkitError
from infra.jsonio import MAX_BYTES, read_bounded
from infra.jsonio import read_json as bounded_json
from infra.paths import UnsafePathError, inside, plain_name

from .png import critical_chunks
from .schema import COCO, META_BASE, META_COUNT, SCENE_BASE, problem
from .vocab import Vocabulary

DATASET_NAME = "CLEVR-DS"
DEFAULT_ROOT = "output/clevr-ds"  # where `render` writes and `bench` and `train` read by default
EXECUTION_KEYS = ("device", "threads", "render_s", "annotate_s")  # keys of "render": where and how fast, not what
MAX_LISTED = 10
MAX_IMAGES = 1_000_000  # image names hold 6 digits


class DatasetError(ToolkitError, ValueError):
    """A missing or corrupt dataset file."""


def _split(split: str) -> str:
    return plain_name(split, "split")


def meta_path(root: Path | str, split: str) -> Path:
    return Path(root) / "meta" / f"{_split(split)}.json"


def images_dir(root: Path | str, split: str) -> Path:
    return Path(root) / "images" / _split(split)


def scenes_dir(root: Path | str, split: str) -> Path:
    return Path(root) / "scenes" / _split(split)


def coco_path(root: Path | str, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{_split(split)}.json"


def manifest_path(root: Path | str, split: str) -> Path:
    return Path(root) / "annotations" / f"manifest_{_split(split)}.csv"


def clevr_scenes_path(root: Path | str, split: str) -> Path:
    return Path(root) / f"CLEVR_{_split(split)}_scenes.json"


def image_path(root: Path | str, scene: dict) -> Path:
    """The scene's image; UnsafePathError if its names are not plain or it resolves outside `root`."""
    return inside(root, "images", *_image_parts(scene))


def _image_parts(scene: dict) -> tuple[str, str]:
    """The scene's split and image file name; UnsafePathError unless both are plain names."""
    return _split(scene["split"]), plain_name(scene["image_filename"], "image_filename")


def image_name(split: str, index: int) -> str:
    return f"CLEVR-DS_{split}_{index:06d}"


def scene_path(root: Path | str, split: str, index: int) -> Path:
    return scenes_dir(root, split) / f"{image_name(split, index)}.json"


def image_file(root: Path | str, split: str, index: int) -> Path:
    return images_dir(root, split) / f"{image_name(split, index)}.png"


def list_splits(root: Path | str) -> list[str]:
    return sorted(p.stem for p in (Path(root) / "meta").glob("*.json"))


def chosen_splits(root: Path | str, splits: list[str]) -> list[str]:
    """`splits` (plain names, each with a meta file), or every split of `root`; DatasetError when there is none."""
    for split in splits:
        if not meta_path(root, split).is_file():
            raise DatasetError(f"no split {split!r} in {root} (splits there: {', '.join(list_splits(root)) or 'none'})")
    chosen = list(splits) or list_splits(root)
    if not chosen:
        raise DatasetError(f"{root}: no CLEVR-DS split found (no meta/<split>.json)")
    return chosen


def written_folders(root: Path | str, split: str) -> list[Path]:
    """The folders that a render or export of `split` writes into (images, scenes, meta, annotations),
    after checking that each resolves inside `root`: UnsafePathError for one symlinked out of it."""
    parts = (("images", _split(split)), ("scenes", _split(split)), ("meta",), ("annotations",))
    return [inside(root, *p) for p in parts]


def read_json(path: Path | str, root: Path | str | None = None, max_bytes: int = MAX_BYTES) -> dict:
    """A dataset JSON file (infra.jsonio: bounded in size and depth, inside `root` when given);
    DatasetError with one line otherwise."""
    return bounded_json(path, "JSON file", max_bytes=max_bytes, root=root, error=DatasetError)


def read_bytes(path: Path | str, root: Path | str, what: str, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a dataset file inside `root`, at most `max_bytes` of them; DatasetError with one line otherwise."""
    return read_bounded(path, what, max_bytes, root, DatasetError)


def read_class_names(path: Path | str) -> list[str]:
    """Class names from a text file, one a line (stripped); blank lines and '#' comments are skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read classes file {path}: {e}") from None
    names = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not names:
        raise DatasetError(f"classes file {path} names no classes")
    return names


def _conform(data, schema: dict, path: Path) -> None:
    found = problem(data, schema)
    if found:
        raise DatasetError(f"{path}: {found}")


def load_meta(root: Path | str, split: str, schema: dict = META_BASE) -> dict:
    """The split's meta, checked against `schema`, naming this split and promising 1..MAX_IMAGES images."""
    path = meta_path(root, split)
    if not path.exists():
        known = ", ".join(list_splits(root)) or "none"
        raise DatasetError(f"no split {split!r} in {root} (splits there: {known})")
    return checked_meta(read_json(path, root), split, path, schema)


def checked_meta(meta, split: str, path: Path | str, schema: dict = META_BASE) -> dict:
    """`meta` (read from `path`) if it matches `schema`, names `split` (or no split) and promises 1..MAX_IMAGES images;
    DatasetError naming `path` otherwise."""
    _conform(meta, schema, path)
    if meta.get("split", split) != split:
        raise DatasetError(f"{path}: meta of split {meta['split']!r} in the file of split {split!r}")
    count = meta.get("num_images", 1)
    if isinstance(count, int) and not 1 <= count <= MAX_IMAGES:
        raise DatasetError(f"{path}: num_images {count} outside 1..{MAX_IMAGES}")
    return meta


def load_vocabulary(root: Path | str, split: str) -> Vocabulary:
    """The vocabulary the split was rendered with; DatasetError when its meta holds none that works."""
    meta = load_meta(root, split)
    try:
        return Vocabulary.from_dict(meta["vocabulary"])
    except ValueError as e:  # an empty table
        raise DatasetError(f"{meta_path(root, split)}: {e}") from None


def read_scene(root: Path | str, split: str, name: str, schema: dict = SCENE_BASE, num_images: int | None = None) -> dict:
    """Scene JSON `name` of a split, checked: `schema`, plain names whose paths stay inside `root`, and the
    layout (file name, split and image_filename follow image_index, which lies in 0..num_images-1).
    DatasetError with one line naming the file otherwise."""
    path = scenes_dir(root, split) / name
    return checked_scene(read_json(path, root), split, name, path, schema, num_images, root)  # read_json refuses a path leaving root


def checked_scene(scene, split: str, name: str, path: Path | str, schema: dict = SCENE_BASE, num_images: int | None = None,
                  root: Path | str | None = None) -> dict:  # fmt: skip
    """`scene`, read from file `name` at `path`, if it matches `schema` and the layout (see read_scene), its names are
    plain and, with `root`, its image's path stays inside it; DatasetError naming `path` otherwise."""
    _conform(scene, schema, path)
    try:
        _image_parts(scene) if root is None else image_path(root, scene)
    except UnsafePathError as e:
        raise DatasetError(f"{path}: {e}") from None
    index = scene["image_index"]
    expected = image_name(split, index)
    if (name, scene["split"], scene["image_filename"]) != (f"{expected}.json", split, f"{expected}.png"):
        raise DatasetError(f"{path}: split {scene['split']!r}, image_index {index} and image_filename "
                           f"{scene['image_filename']!r} do not match the layout ({expected}.json, {expected}.png "
                           f"in split {split!r})")  # fmt: skip
    if index < 0 or (num_images is not None and index >= num_images):
        raise DatasetError(f"{path}: image_index {index} out of range (meta's num_images is {num_images})")
    return scene


def load_scenes(root: Path | str, split: str, schema: dict = SCENE_BASE) -> list[dict]:
    """All finished scenes of a split, each checked by `read_scene`, sorted by image_index."""
    num_images = load_meta(root, split, META_COUNT)["num_images"]
    names = sorted(p.name for p in scenes_dir(root, split).glob("*.json") if TMP_MARK not in p.name)
    return sorted((read_scene(root, split, n, schema, num_images) for n in names), key=lambda s: s["image_index"])


def finished_scenes(root: Path | str, split: str, schema: dict = SCENE_BASE, allow_incomplete: bool = False) -> list[dict]:
    """The split's scenes whose image is on disk, sorted by image_index. DatasetError (one line) when
    none is, or, unless `allow_incomplete`, when the meta promises scenes or images that are missing
    (a split still rendering, or one whose render was killed)."""
    missing = missing_files(root, split, load_meta(root, split, META_COUNT)["num_images"])
    if missing and not allow_incomplete:
        raise DatasetError(f"{incomplete_message(root, split, missing)}; re-run render or pass --allow-incomplete")
    scenes = [s for s in load_scenes(root, split, schema) if s["image_filename"] not in missing]
    if not scenes:
        raise DatasetError(f"split {split!r} of {root} has no finished scenes")
    return scenes


def load_coco(root: Path | str, split: str) -> dict:
    """The split's COCO export, with the fields that readers use checked (schema.COCO); DatasetError otherwise."""
    path = coco_path(root, split)
    coco = bounded_json(path, "COCO export", root=root, error=DatasetError)
    _conform(coco, COCO, path)
    return coco


def missing_files(root: Path | str, split: str, num_images: int) -> list[str]:
    """Names of the scene JSONs and images of indices 0..num_images-1 that are not on disk."""
    paths = (p for i in range(num_images) for p in (scene_path(root, split, i), image_file(root, split, i)))
    return [p.name for p in paths if not p.is_file()]


def incomplete_message(root: Path | str, split: str, missing: list[str]) -> str:
    """One line naming the missing files of a split (the first MAX_LISTED of them)."""
    more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
    return f"split {split!r} of {root} is incomplete: missing {', '.join(missing[:MAX_LISTED])}{more}"


def png_content(data: bytes, path: Path | str) -> bytes:
    """The critical chunks (IHDR, PLTE, IDAT, IEND) of a PNG file: its pixels without metadata chunks (dates, text)."""
    try:
        return critical_chunks(data)
    except ValueError:
        raise DatasetError(f"{path}: not a PNG file") from None


def defining(record: dict) -> dict:
    """A meta or scene less what does not define content: num_images and the EXECUTION_KEYS of its "render"."""
    out = {k: v for k, v in record.items() if k != "num_images"}
    if isinstance(out.get("render"), dict):
        out["render"] = {k: v for k, v in out["render"].items() if k not in EXECUTION_KEYS}
    return out


def _content(record: dict) -> bytes:
    """Canonical JSON of `defining(record)`."""
    return json.dumps(defining(record), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def split_hash(root: Path | str, split: str, scenes: list[dict] | None = None) -> str:
    """SHA-256 of a split's content: equal for two renders of the same scenes, whenever and however they ran.

    In order: the meta, then per scene in image_index order its scene JSON and the SHA-256 of its
    image's PNG critical chunks (`png_content`). JSON is canonical (sorted keys, separators ',' ':',
    ASCII, one line each) and leaves out meta's num_images (the scenes tell which images there are)
    and, in "render", the EXECUTION_KEYS device, threads, render_s and annotate_s. `scenes` default
    to `load_scenes(root, split)`.
    """
    scenes = sorted(load_scenes(root, split) if scenes is None else scenes, key=lambda s: s["image_index"])
    return content_hash(load_meta(root, split), ((scene, _png(image_path(root, scene))) for scene in scenes))


def _png(path: Path) -> tuple[bytes, Path]:
    try:
        return path.read_bytes(), path
    except FileNotFoundError:
        raise DatasetError(f"missing file {path}") from None


def content_hash(meta: dict, images: Iterable[tuple[dict, tuple[bytes, object]]]) -> str:
    """split_hash of a meta and (scene, (PNG bytes, where they were read)) in image_index order, wherever they are stored."""
    h = hashlib.sha256(_content(meta))
    for scene, (data, where) in images:
        h.update(_content(scene) + hashlib.sha256(png_content(data, where)).digest())
    return h.hexdigest()

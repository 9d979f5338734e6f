"""A user's own 3D models as aerial classes: `DIR/assets.json` read, checked and turned into vocabulary shapes.

    {"assets": [{"file": "crate.obj", "class": "crate", "size_m": [2.0, 4.0]}]}

`file` is a glTF/GLB, OBJ, PLY or .blend file inside DIR (a relative path; its textures and buffers
may sit beside it), `class` the retrieval class it adds (one model per class, not one of the
family's own), `size_m` the range of its longest side in metres; `on` (cover -> weight, default
DEFAULT_ON) says where it may stand. More keys may follow and are ignored.

A model keeps its own materials: its colour and material are ORIGINAL. Its geometry enters the
vocabulary as the convex hull of its vertices after `transform` (centred, longest side 1 along x),
which `renderer.assets` measures in Blender, so the sampler sizes and places it like the built-in
classes. The split stores the whole folder under ROOT/assets/<content hash>, so a split renders,
resumes and re-renders without DIR.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from infra.errors import ToolkitError
from infra.jsonio import read_json
from infra.paths import UnsafePathError, confine

from .ground import COVERS
from .schema import NUMBER, ListOf, problem
from .vocab import Vocabulary

MANIFEST = "assets.json"
FORMATS = (".gltf", ".glb", ".obj", ".ply", ".blend")
DEFAULT_ON = {"lot": 1.0, "road": 1.0, "soil": 1.0, "grass": 1.0}
ORIGINAL = "original"  # the colour and material of a model rendered as modelled
ORIGINAL_RGB = [128, 128, 128]  # what a colour table needs; never painted
MAX_FOLDER_BYTES = 4 * 2**30
STORE = "assets"  # ROOT/assets/<hash>: the split's copy of DIR
ENTRY = {"file": str, "class": str, "size_m": ListOf(NUMBER, 2)}


class AssetError(ToolkitError, ValueError):
    """An assets folder, manifest or model that cannot be used (one line naming the culprit)."""


@dataclass(frozen=True)
class AssetSpec:
    file: str  # relative POSIX path inside the folder
    cls: str
    size_m: tuple[float, float]
    on: dict[str, float]


def _spec(entry, where: str, folder: Path) -> AssetSpec:
    found = problem(entry, ENTRY, where)
    if found:
        raise AssetError(found)
    name = entry["file"]
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise AssetError(f"{where}.file {name!r} must be a relative path inside {folder}")
    try:
        path = confine(folder, folder.joinpath(*parts))
    except UnsafePathError:
        raise AssetError(f"{where}.file {name!r} leaves {folder}") from None
    if path.suffix.lower() not in FORMATS:
        raise AssetError(f"{where}.file {name!r}: unknown format {path.suffix or '(none)'}; known: {', '.join(FORMATS)}")
    if not path.is_file():
        raise AssetError(f"{where}.file {name!r}: no such file in {folder}")
    lo, hi = (float(v) for v in entry["size_m"])
    if not 0 < lo <= hi:
        raise AssetError(f"{where}.size_m {entry['size_m']} must be two sizes in metres with 0 < low <= high")
    on = entry.get("on", DEFAULT_ON)
    if not isinstance(on, dict) or not on or any(c not in COVERS for c in on) or problem(on, {c: NUMBER for c in on}) \
            or any(w < 0 for w in on.values()) or not any(w > 0 for w in on.values()):
        raise AssetError(f"{where}.on must map covers ({', '.join(COVERS)}) to weights >= 0, one of them > 0")
    if not entry["class"].strip():
        raise AssetError(f"{where}.class is empty")
    return AssetSpec(name, entry["class"].strip(), (lo, hi), {c: float(w) for c, w in on.items()})


def read_manifest(folder: str | os.PathLike, vocab: Vocabulary) -> list[AssetSpec]:
    """The checked entries of FOLDER/assets.json; AssetError (one line) for anything unusable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AssetError(f"--assets {folder}: no such folder")
    path = folder / MANIFEST
    if not path.is_file():
        raise AssetError(f"--assets {folder}: no {MANIFEST} in it")
    data = read_json(path, "assets manifest")
    found = problem(data, {"assets": ListOf(dict)})
    if found:
        raise AssetError(f"{path}: {found}")
    if not data["assets"]:
        raise AssetError(f"{path}: lists no assets")
    specs = [_spec(entry, f"{path}: assets[{i}]", folder) for i, entry in enumerate(data["assets"])]
    classes = [s.cls for s in specs]
    for cls in classes:
        if cls in vocab.shapes or classes.count(cls) > 1:
            raise AssetError(f"{path}: class {cls!r} is taken ({'by the family' if cls in vocab.shapes else 'twice'}); "
                             "give each model a class of its own")
    return specs


def folder_files(folder: str | os.PathLike) -> list[Path]:
    """Every file under `folder`, sorted; AssetError for a link leaving it or a folder over MAX_FOLDER_BYTES."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in files:
        try:
            confine(folder, path)
        except UnsafePathError:
            raise AssetError(f"--assets {folder}: {path.relative_to(folder)} links outside the folder") from None
    if sum(p.stat().st_size for p in files) > MAX_FOLDER_BYTES:
        raise AssetError(f"--assets {folder}: over {MAX_FOLDER_BYTES / 2**30:g} GiB")
    return files


def folder_hash(folder: str | os.PathLike) -> str:
    """SHA-256 of the folder's content: each file's relative path and bytes, in path order."""
    h = hashlib.sha256()
    for path in folder_files(folder):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def stored_folder(content_hash: str) -> str:
    """Where a split keeps its copy of an assets folder, relative to its root."""
    return f"{STORE}/{content_hash[:16]}"


def with_assets(vocab: Vocabulary, specs: list[AssetSpec], measured: list[dict], stored: str) -> Vocabulary:
    """`vocab` plus one shape per asset: its file under `stored`, its measured transform and hull."""
    shapes = dict(vocab.shapes)
    for spec, m in zip(specs, measured):
        shapes[spec.cls] = {"mesh": "asset", "file": f"{stored}/{spec.file}", "transform": m["transform"],
                            "hull": m["hull"], "size_m": list(spec.size_m), "on": spec.on,
                            "colors": [ORIGINAL], "materials": [ORIGINAL]}  # fmt: skip
    colors = {**vocab.colors, ORIGINAL: tuple(ORIGINAL_RGB)}
    materials = {**vocab.materials, ORIGINAL: {"metallic": 0.0, "roughness": 0.5, "specular": 0.5}}
    return replace(vocab, shapes=shapes, colors=colors, materials=materials)

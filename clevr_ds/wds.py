"""The WebDataset export of a split (`export --format wds`) and its reader (`bench --wds`).

    DIR/<split>-000000.tar    shard 0: `shard_size` samples in image_index order; per sample NAME.png (the split's
                              image) then NAME.json (its scene JSON), NAME the image's stem (WebDataset's key)
    DIR/<split>-meta.json     the split's meta (vocabulary, scales, num_images), which a reader needs besides the samples

Shards are tar files of fixed bytes (`infra.archive`: ustar, sorted, dated GENERATOR_DATE, owner 0:0), written as
one set with the meta. The reader takes the shards of one split from one folder: the folder, a pattern with
`{000000..000009}` ranges, or a '::'-separated list. Their member names are untrusted: only plain names, a .png and
a .json per sample, each scene checked as a scene file is (`dataset.checked_scene`); nothing is extracted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from infra.archive import TarMember, tar_members, tar_writer
from infra.atomic import Writer, text_writer
from infra.jsonio import MAX_BYTES, MiB, parse_json
from infra.paths import inside, plain_name

from . import GENERATOR_DATE
from .dataset import (MAX_IMAGES, DatasetError, checked_meta, checked_scene, content_hash, image_name, image_path,
                      incomplete_message, load_meta, read_json)  # fmt: skip
from .export import write_folder
from .schema import META_BENCH, SCENE_BENCH

DEFAULT_SHARD_SIZE = 100
SHARD = re.compile(r"(?P<split>[A-Za-z0-9][A-Za-z0-9._-]*)-(?P<number>\d{6})\.tar")
RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
MTIME = int(datetime.fromisoformat(GENERATOR_DATE).replace(tzinfo=timezone.utc).timestamp())


def default_dir(root: Path | str, split: str) -> Path:
    """ROOT/wds/<split>, refused (UnsafePathError) where it resolves outside ROOT."""
    return inside(root, "wds", plain_name(split, "split"))


def meta_name(split: str) -> str:
    return f"{split}-meta.json"


def write_wds(root: Path | str, split: str, scenes: list[dict], shard_size: int = DEFAULT_SHARD_SIZE,
              out: Path | str | None = None) -> list[Path]:  # fmt: skip
    """Write the scenes of `split` (image_index order) as shards of `shard_size` samples and the meta at `out`
    (default: ROOT/wds/<split>), holding its lock; return the shards. DatasetError (nothing written) for a folder
    holding other files."""
    out = Path(out) if out is not None else default_dir(root, split)
    writers: dict[Path, Writer] = {}
    for number, start in enumerate(range(0, len(scenes), shard_size)):
        members: dict[str, bytes | Path] = {}
        for scene in scenes[start : start + shard_size]:
            stem = Path(scene["image_filename"]).stem
            members[f"{stem}.png"] = image_path(root, scene)
            members[f"{stem}.json"] = (json.dumps(scene) + "\n").encode()  # the bytes the renderer writes
        writers[out / f"{split}-{number:06d}.tar"] = tar_writer(members, MTIME)
    shards = list(writers)
    writers[out / meta_name(split)] = text_writer(json.dumps(load_meta(root, split), indent=2) + "\n")
    write_folder(out, writers, split)
    return shards


def shard_paths(spec: str) -> list[Path]:
    """The shards a `--wds` value names: a folder's *.tar (sorted), else each '::'-separated part with its
    `{A..B}` ranges expanded (zero-padded as A is), in order."""
    if Path(spec).is_dir():
        shards = sorted(p for p in Path(spec).iterdir() if p.suffix == ".tar")
        if not shards:
            raise DatasetError(f"{spec}: no shards (*.tar) in the folder")
        return shards
    paths: list[str] = []
    for part in spec.split("::"):
        paths += _expand(part, MAX_IMAGES - len(paths))
    return [Path(p) for p in paths]


def _expand(pattern: str, limit: int) -> list[str]:
    """`pattern` with its first {A..B} range expanded, recursively; DatasetError past `limit` names."""
    match = RANGE.search(pattern)
    if match is None:
        return [pattern]
    lo, hi = int(match[1]), int(match[2])
    if not 0 <= hi - lo < limit:
        raise DatasetError(f"shard pattern {pattern!r}: range {match[0]} must count up, to at most {limit} names")
    names: list[str] = []
    for i in range(lo, hi + 1):
        names += _expand(f"{pattern[: match.start()]}{i:0{len(match[1])}d}{pattern[match.end() :]}", limit - len(names))
    return names


@dataclass(frozen=True)
class ShardSet:
    """The samples of a split read from its shards: meta, scenes in image_index order and their PNG members."""

    meta: dict
    scenes: list[dict]
    images: list[TarMember]

    def content_hash(self) -> str:
        """The split's content hash (dataset.split_hash), from the shards' bytes."""
        return content_hash(self.meta, ((s, (m.read_bytes(), m)) for s, m in zip(self.scenes, self.images)))


def read_shard_meta(spec: str) -> dict:
    """The meta of the split whose shards `spec` names (see shard_paths), without reading a shard; DatasetError
    (one line) as read_shards gives it."""
    return _shards_and_meta(spec)[2]


def _shards_and_meta(spec: str) -> tuple[list[Path], str, dict]:
    """The shards `spec` names, their split and its checked meta; DatasetError unless they are one split's,
    in one folder beside its meta."""
    shards = shard_paths(spec)
    names = [SHARD.fullmatch(p.name) for p in shards]
    if not all(names) or len({m["split"] for m in names}) != 1 or len({p.parent for p in shards}) != 1:
        raise DatasetError(f"--wds {spec}: expected shards named <split>-NNNNNN.tar of one split in one folder")
    split, folder = names[0]["split"], shards[0].parent
    absent = [str(p) for p in shards if not p.is_file()]
    if absent:
        raise DatasetError(f"no shard {absent[0]}" + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""))
    meta_file = folder / meta_name(split)
    return shards, split, checked_meta(read_json(meta_file, folder), split, meta_file, META_BENCH)


def read_shards(spec: str, allow_incomplete: bool = False) -> ShardSet:
    """The samples of the shards `spec` names (see shard_paths): one split, in one folder beside its meta; DatasetError
    (one line) for anything else, a sample twice, a malformed member or scene, or (unless `allow_incomplete`) a
    sample the meta promises that no shard holds."""
    shards, split, meta = _shards_and_meta(spec)
    samples: dict[int, tuple[dict, TarMember]] = {}
    for shard in shards:
        for scene, png in _samples(shard, split, meta["num_images"]):
            if scene["image_index"] in samples:
                raise DatasetError(f"{png}: sample {scene['image_index']} appears twice in the shards")
            samples[scene["image_index"]] = scene, png
    missing = [f"{image_name(split, i)}.png" for i in range(meta["num_images"]) if i not in samples]
    if missing and not allow_incomplete:
        raise DatasetError(f"{incomplete_message(spec, split, missing)}; pass --allow-incomplete to use the shards given")
    if not samples:
        raise DatasetError(f"the shards {spec} hold no sample")
    ordered = [samples[i] for i in sorted(samples)]
    return ShardSet(meta, [s for s, _ in ordered], [m for _, m in ordered])


def _samples(shard: Path, split: str, num_images: int) -> list[tuple[dict, TarMember]]:
    """(scene, PNG member) of each sample of a shard, checked."""
    members: dict[str, dict[str, TarMember]] = {}
    for member in tar_members(shard, 2 * MAX_IMAGES, DatasetError):
        key, _, ext = member.name.partition(".")
        members.setdefault(key, {})[ext] = member
    samples = []
    for key, parts in members.items():
        if sorted(parts) != ["json", "png"]:
            raise DatasetError(f"{shard}: sample {key!r} holds {', '.join(sorted(parts))}; expected its png and json")
        scene_file = parts["json"]
        if scene_file.size > MAX_BYTES:
            raise DatasetError(f"{scene_file}: scene JSON larger than the limit of {MAX_BYTES // MiB} MiB")
        try:
            text = scene_file.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DatasetError(f"cannot read {scene_file}: {e}") from None
        scene = parse_json(text, scene_file, "scene JSON", error=DatasetError)
        samples.append((checked_scene(scene, split, scene_file.name, scene_file, SCENE_BENCH, num_images), parts["png"]))
    return samples

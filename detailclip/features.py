"""Per-image patch features, extracted in batches and cached on disk.

Cache layout: CACHE/<key folder>/key.json (the full key) and one <image sha256>[-<boxes hash>].feat
file per image: a JSON header line (format, key digest, entry name, dtype, shape [P, D], the level id
of every patch, and a sha256 over the full key, the entry name, dtype, shape, level ids (int16) and
feature bytes), then the fp16 [P, D] features. The key folder is determined by (backbone, pretrained,
seed, input size, scheme, k, cutting options); an image by its content hash, so renamed or copied
images hit the cache. Entries are written atomically, so a killed extraction resumes where it
stopped. Every read is verified against the header and checksum: a bad entry (empty, truncated,
overwritten, from another key or image, even one whose header was rewritten to name this one) is
reported in one line on stderr and extracted again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from infra.atomic import atomic_path, remove_stale_temporaries, write_json
from infra.cluster import RayCluster

from .backbones import Backbone
from .cover import scheme_boxes
from .images import content_hash, decode_image, max_image_pixels as pixel_limit, read_bytes
from .patches import patch_groups

CACHE_FORMAT = 3  # 3: the checksum covers the key and the entry name


@dataclass
class PatchFeatures:
    """The patch features of one image: patch 0 is the whole image."""

    path: str
    image_hash: str
    data: np.ndarray  # fp16 [P, D], read-only when it comes from the cache
    level_ids: np.ndarray  # int [P]

    @property
    def features(self) -> torch.Tensor:
        """float32 [P, D], L2-normalised (before fp16 rounding)."""
        return torch.from_numpy(np.asarray(self.data, dtype=np.float32))

    @property
    def levels(self) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.level_ids, dtype=np.int64))

    @property
    def num_patches(self) -> int:
        return int(self.data.shape[0])


@dataclass(frozen=True)
class CutOptions:
    """How patches are chosen and cut (everything besides the backbone that changes features)."""

    scheme: str = "cc"
    k: int = 10
    enlarge: float = 1.0
    min_side: int = 8
    antialias: bool = True

    def key(self) -> dict:
        key = {"scheme": self.scheme, "antialias": self.antialias}
        if self.scheme in ("cc", "grid"):
            key["k"] = self.k
        if self.scheme == "objects":
            key.update(enlarge=self.enlarge, min_side=self.min_side)
        return key


class FeatureCache:
    """One key folder of the on-disk feature cache, with verified entries."""

    def __init__(self, root: str | Path, backbone: Backbone, cut: CutOptions):
        self.key = {"format": CACHE_FORMAT, **backbone.identity, **cut.key()}
        self.digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:12]
        self.dim = backbone.embed_dim
        label = "-".join(_slug(str(v)) for v in (backbone.name, self.key["pretrained"], cut.scheme))
        self.folder = Path(root) / f"{label}-{self.digest}"
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.folder)
        if not (self.folder / "key.json").exists():
            write_json(self.folder / "key.json", self.key, indent=2)

    def path(self, entry: str) -> Path:
        return self.folder / f"{entry}.feat"

    def load(self, entry: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(features fp16 [P, D] read-only, levels int16 [P]) of a verified entry; None when it is
        missing or bad (a bad one is reported in one line on stderr)."""
        path = self.path(entry)
        try:
            return self._verified(entry, path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            tqdm.write(f"warning: feature cache entry {path} is bad ({e}); extracting it again", file=sys.stderr)
            return None

    def store(self, entry: str, features: np.ndarray, levels: np.ndarray) -> None:
        features = np.ascontiguousarray(features, dtype="<f2")
        header = json.dumps(self._header(entry, features, levels)).encode()
        with atomic_path(self.path(entry)) as tmp:
            tmp.write_bytes(header + b"\n" + features.tobytes())

    def _header(self, entry: str, features: np.ndarray, levels: np.ndarray) -> dict:
        shape = list(features.shape)
        identity = json.dumps({"key": self.key, "entry": entry, "dtype": "float16", "shape": shape}, sort_keys=True)
        checksum = hashlib.sha256(identity.encode() + b"\n")
        checksum.update(levels.astype("<i2").tobytes())
        checksum.update(features)
        return {"format": CACHE_FORMAT, "key": self.digest, "entry": entry, "dtype": "float16",
                "shape": shape, "levels": levels.tolist(), "sha256": checksum.hexdigest()}

    def _verified(self, entry: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The entry's arrays if `data` matches its own header and this folder; else ValueError."""
        if not data:
            raise ValueError("empty file")
        head, _, payload = data.partition(b"\n")
        try:
            header = json.loads(head)
            levels = np.array(header["levels"], dtype=np.int16).reshape(-1)
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError):
            raise ValueError("no valid header") from None
        size = len(levels) * self.dim * 2
        if len(payload) != size:
            raise ValueError(f"{len(payload)} feature bytes where {len(levels)}x{self.dim} fp16 needs {size}")
        features = np.frombuffer(payload, dtype="<f2").reshape(len(levels), self.dim)
        wrong = [name for name, value in self._header(entry, features, levels).items() if header.get(name) != value]
        if wrong:
            raise ValueError(f"wrong {', '.join(wrong)}")
        return features, levels


class Pending(NamedTuple):
    """An image to encode: its index and path, cache entry name, decoded image (or its bytes, for Ray) and object boxes."""

    index: int
    path: str
    entry: str
    image: torch.Tensor | bytes
    bboxes: Sequence[Sequence[float]] | None


Encoded = list[tuple[np.ndarray, np.ndarray]]  # (fp16 features [P, D], int16 levels [P]) per image of a batch


def extract_features(
    backbone: Backbone,
    image_paths: Sequence[str | Path],
    scheme: str = "cc",
    k: int = 10,
    cache_dir: str | Path | None = None,
    batch_size: int = 4,
    object_bboxes: Sequence[Sequence[Sequence[float]]] | None = None,
    progress: bool = True,
    enlarge: float = 1.0,
    min_side: int = 8,
    antialias: bool = True,
    num_workers: int = 2,
    max_image_pixels: int | None = None,
    cluster: RayCluster | None = None,
) -> list[PatchFeatures]:
    """Patch features of every image (in order), from the cache where present.

    The images missing from the cache are cut and encoded batch_size at a time (in order), their
    patches in backbone.batch_size chunks; reading, hashing and decoding run ahead in `num_workers`
    threads. With a `cluster`, Ray actors there encode the same batches (see detailclip.distributed)
    and this process writes the cache: the same bytes. `object_bboxes[i]` lists the [x, y, w, h]
    boxes of image i (scheme "objects" only). Larger images than `max_image_pixels` are refused
    (see images.max_image_pixels).
    """
    cut = CutOptions(scheme=scheme, k=k, enlarge=enlarge, min_side=min_side, antialias=antialias)
    if scheme == "objects" and (object_bboxes is None or len(object_bboxes) != len(image_paths)):
        raise ValueError("scheme 'objects' needs one bbox list per image")
    if cluster is None:
        encoder = contextlib.nullcontext(functools.partial(_encode_here, backbone, cut))
    else:
        from .distributed import ray_encoder

        encoder = ray_encoder(cluster, backbone, cut, pixel_limit(max_image_pixels))
    results: list[PatchFeatures | None] = [None] * len(image_paths)
    bar = tqdm(total=len(image_paths), desc=f"features {backbone.name} {scheme}", unit="img", disable=not progress)

    def read(index: int) -> tuple[Pending, tuple | None]:
        """The image (decoded here without a cluster) and its verified cached arrays or None."""
        data = read_bytes(image_paths[index])
        bboxes = object_bboxes[index] if scheme == "objects" else None
        entry = _entry_name(content_hash(data), bboxes)
        cached = cache.load(entry) if cache is not None else None
        if cached is None and cluster is None:
            data = decode_image(data, image_paths[index], max_image_pixels)
        return Pending(index, str(image_paths[index]), entry, data, bboxes), cached

    def batches() -> Iterator[list[Pending]]:
        """The images missing from the cache in batches of batch_size; the cached ones go to `results`."""
        batch = []
        for item, cached in _prefetch(pool, read, range(len(image_paths)), depth=2 * batch_size + 2):
            if cached is not None:
                results[item.index] = PatchFeatures(item.path, item.entry, *cached)
                bar.update(1)
                continue
            batch.append(item)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    with encoder as encode:
        cache = FeatureCache(cache_dir, backbone, cut) if cache_dir is not None else None
        with bar, ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
            with contextlib.closing(encode(batches())) as encoded_batches:
                for batch, encoded in encoded_batches:
                    for item, (features, levels) in zip(batch, encoded):
                        if cache is not None:
                            cache.store(item.entry, features, levels)
                        results[item.index] = PatchFeatures(item.path, item.entry, features, levels)
                    bar.update(len(batch))
    return results


def _encode_here(backbone: Backbone, cut: CutOptions, batches: Iterable[list[Pending]]) -> Iterator[tuple[list[Pending], Encoded]]:
    for batch in batches:
        yield batch, encode_batch(backbone, cut, [item.image for item in batch], [item.bboxes for item in batch])


def encode_batch(backbone: Backbone, cut: CutOptions, images: Sequence[torch.Tensor],
                 bboxes: Sequence[Sequence[Sequence[float]] | None]) -> Encoded:
    """Cut and encode images together (grouped by size, one roi_align pass per group); `bboxes[i]`:
    image i's object boxes (scheme "objects") or None."""
    boxes, levels = [], []
    by_size: dict[tuple[int, int], list[int]] = {}
    for slot, image in enumerate(images):
        height, width = image.shape[-2:]
        image_boxes, image_levels = scheme_boxes(cut.scheme, height, width, cut.k, bboxes[slot], cut.enlarge, cut.min_side)
        boxes.append(image_boxes)
        levels.append(image_levels.numpy().astype(np.int16))
        by_size.setdefault((height, width), []).append(slot)
    groups, offset = [], 0
    for slots in by_size.values():
        stacked = torch.stack([images[s] for s in slots]).to(backbone.device, non_blocking=True)
        size_groups = patch_groups(stacked, [boxes[s] for s in slots], backbone.image_size, backbone.mean,
                                   backbone.std, cut.antialias)
        groups += [(ids + offset, patches) for ids, patches in size_groups]
        offset += sum(len(ids) for ids, _ in size_groups)
    features = encode_groups(backbone, groups).to(torch.float16).cpu().numpy()
    encoded: Encoded = [None] * len(images)
    start = 0
    for slot in (slot for slots in by_size.values() for slot in slots):
        count = len(levels[slot])
        encoded[slot] = features[start:start + count], levels[slot]
        start += count
    return encoded


def encode_patches(backbone: Backbone, images: torch.Tensor, boxes: Sequence[torch.Tensor],
                   antialias: bool = True) -> torch.Tensor:
    """Cut boxes[i] out of images[i] and encode them: L2-normalised features [sum_i P_i, D] in box order."""
    return encode_groups(backbone, patch_groups(images, boxes, backbone.image_size, backbone.mean, backbone.std,
                                                antialias))


def encode_groups(backbone: Backbone, groups: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Encode (patch indices, patches) groups in full batches; features [N, D] in index order."""
    features = torch.empty(sum(len(ids) for ids, _ in groups), backbone.embed_dim, device=backbone.device)
    for ids, pixels in _full_batches(groups, backbone.batch_size):
        features[ids.to(backbone.device)] = backbone.encode_images(pixels)
    return features


def _full_batches(groups: list[tuple[torch.Tensor, torch.Tensor]], size: int) -> Iterator:
    """Re-slice (ids, patches) groups into batches of `size` (the last one shorter), copying only
    the pieces that straddle a group boundary."""
    pieces, count = [], 0
    for ids, patches in groups:
        start = 0
        while start < len(ids):
            take = min(size - count, len(ids) - start)
            pieces.append((ids[start:start + take], patches[start:start + take]))
            count += take
            start += take
            if count == size:
                yield _join(pieces)
                pieces, count = [], 0
    if pieces:
        yield _join(pieces)


def _join(pieces: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(pieces) == 1:
        return pieces[0]
    return torch.cat([ids for ids, _ in pieces]), torch.cat([patches for _, patches in pieces])


def _prefetch(pool: ThreadPoolExecutor, fn, items: Iterable, depth: int) -> Iterator:
    """fn over items in order, at most `depth` calls ahead."""
    queue: deque = deque()
    for item in items:
        queue.append(pool.submit(fn, item))
        if len(queue) >= depth:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()


def _entry_name(image_hash: str, bboxes: Sequence[Sequence[float]] | None) -> str:
    if bboxes is None:
        return image_hash
    boxes_hash = hashlib.sha256(json.dumps([[float(v) for v in b] for b in bboxes]).encode()).hexdigest()[:12]
    return f"{image_hash}-{boxes_hash}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "_", text).strip("_")[:40] or "x"

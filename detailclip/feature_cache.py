"""The on-disk patch-feature cache: one verified entry per image and cutting key.

Layout: CACHE/<key folder>/key.json (the full key) and one <image sha256>[-<boxes hash>].feat
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

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from infra.atomic import atomic_path, remove_stale_temporaries, write_json

from .backbones import Backbone
from .patch_encoder import CutOptions

CACHE_FORMAT = 3  # 3: the checksum covers the key and the entry name


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


def entry_name(image_hash: str, bboxes: Sequence[Sequence[float]] | None) -> str:
    """The cache entry of an image (its content hash) and, for scheme "objects", its boxes."""
    if bboxes is None:
        return image_hash
    boxes_hash = hashlib.sha256(json.dumps([[float(v) for v in b] for b in bboxes]).encode()).hexdigest()[:12]
    return f"{image_hash}-{boxes_hash}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "_", text).strip("_")[:40] or "x"

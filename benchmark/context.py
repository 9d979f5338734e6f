"""What methods share during one bench call: the data source, backbones, cached patch features, costs.

Features are memoised per `FeatureKey` (input size, scheme, k, antialiasing), so Complete Cover features
are extracted once and serve cc-mean, cc-max and cc-cal; when the call's plan (`plan`) also reads a scheme
whose windows begin with them (cc-fine for cc: detailclip.cover.begins_with), only that one is extracted
and the others are its leading windows. Across calls detailclip's on-disk cache (`cache_dir`) serves them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple

import torch

from infra.cluster import RayCluster

from .sources import Source

PROBE_PASSES = 16
PROBE_REPEATS = 3


class FeatureKey(NamedTuple):
    """The patch features a method reads: `BenchContext.features`' arguments (image_size None: the run's own)."""

    scheme: str
    k: int | str = 1
    image_size: int | None = None
    antialias: bool = True


@dataclass
class BenchContext:
    source: Source
    backbone_name: str
    pretrained: str
    seed: int = 0
    image_size: int | None = None  # forced CLIP input size of the run's backbone (None: its own)
    device: str | None = None
    cover_k: int | str = 10  # or "auto" (detailclip.cover.AUTO_K)
    templates: str | None = None  # the prompt templates of the class queries (None: the source's own)
    fusion_k: int | str | None = None  # the cover detailclip cuts with (None: its checkpoint's k)
    checkpoint: Path | None = None
    cache_dir: Path | None = None
    batch_size: int = 4
    progress: bool = True
    cluster: RayCluster | None = None  # where features missing from the cache are extracted (None: here)
    _backbones: dict = field(default_factory=dict, repr=False)
    _features: dict = field(default_factory=dict, repr=False)
    _planned: set = field(default_factory=set, repr=False)
    _memo: dict = field(default_factory=dict, repr=False)

    @classmethod
    def on_backbone(cls, source: Source, chosen: dict, **options) -> "BenchContext":
        """A context on the backbone that `runner.resolve_backbone` chose; `options` set the other fields."""
        return cls(source=source, backbone_name=chosen["backbone"], pretrained=chosen["pretrained"], seed=chosen["seed"],
                   image_size=chosen["image_size"], cover_k=chosen["cover_k"], fusion_k=chosen["fusion_k"],
                   **options)  # fmt: skip

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        """(height, width) of each image, in order, from the source's records."""
        return [(image.height, image.width) for image in self.source.images]

    @property
    def object_bboxes(self) -> list[list[list[float]]]:
        """Ground-truth [x, y, w, h] boxes of each image's objects that are not ignored (the oracle's crops)."""
        return [[list(o.box) for o in image.objects if not o.ignore] for image in self.source.images]

    def backbone(self, image_size: int | None = None):
        """The run's backbone, optionally at another input size (position embeddings interpolated)."""
        from detailclip.backbones import load_backbone

        image_size = image_size or self.image_size
        if image_size not in self._backbones:
            self._backbones[image_size] = load_backbone(
                self.backbone_name, self.pretrained, device=self.device, seed=self.seed, image_size=image_size
            )
        return self._backbones[image_size]

    def plan(self, reads: Iterable[FeatureKey | None]) -> None:
        """Say which features the call's methods will read (None: a method that does not say), so that a
        scheme whose windows begin with another read scheme's is the one extracted (see the module docstring)."""
        self._planned = {self._normalised(key) for key in reads if key is not None}

    def features(self, scheme: str, k: int | str = 1, image_size: int | None = None, antialias: bool = True) -> list:
        """Per-image PatchFeatures (patch 0 = whole image) of a patch scheme, extracted once per call."""
        from detailclip.features import extract_features, leading_windows

        key = self._normalised(FeatureKey(scheme, k, image_size, antialias))
        if key not in self._features:
            wider = self._wider(key)
            if wider is not None:
                items = self.features(*wider)
                self._features[key] = leading_windows(items, self.image_sizes, scheme, k,
                                                      self.backbone(image_size).image_size)
            else:
                self._features[key] = extract_features(
                    self.backbone(image_size), self.source.image_paths, scheme=scheme, k=k, cache_dir=self.cache_dir,
                    batch_size=self.batch_size, progress=self.progress, antialias=antialias,
                    object_bboxes=self.object_bboxes if scheme == "objects" else None, cluster=self.cluster,
                )  # fmt: skip
        return self._features[key]

    def _normalised(self, key: FeatureKey) -> FeatureKey:
        return key._replace(image_size=key.image_size or self.image_size)

    def _wider(self, key: FeatureKey) -> FeatureKey | None:
        """A planned or extracted key whose scheme's windows begin with `key`'s, the rest equal (None: none)."""
        from detailclip.cover import begins_with

        found = [other for other in self._planned | set(self._features)
                 if other.scheme != key.scheme and begins_with(other.scheme, key.scheme)
                 and other._replace(scheme=key.scheme) == key]
        return min(found, key=str) if found else None

    def cover_record(self, k: int | str, image_size: int | None = None) -> dict | None:
        """The rule and each image's k of an auto cover on the backbone at `image_size`; None for a fixed k."""
        from detailclip.cover import auto_k_record

        return auto_k_record(k, self.image_sizes, self.backbone(image_size).image_size)

    def class_embeddings(self, classes: list[str], templates: str, image_size: int | None = None) -> torch.Tensor:
        """Template-averaged class queries [Q, D] from the text tower of the backbone at `image_size`."""
        key = ("text", image_size or self.image_size, tuple(classes), templates)
        if key not in self._memo:
            self._memo[key] = self.backbone(image_size).class_embeddings(classes, templates).float().cpu()
        return self._memo[key]

    def vocabulary(self) -> torch.Tensor:
        """The source's class queries [C, D], embedded with the call's templates (as the protocol's queries are)."""
        from detailclip.text import templates_for

        return self.class_embeddings(list(self.source.classes), templates_for(self.templates, self.source.prompts))

    def gflops_per_pass(self, image_size: int | None = None) -> float:
        image_size = image_size or self.image_size
        if ("gflops", image_size) not in self._memo:
            self._memo[("gflops", image_size)] = self.backbone(image_size).gflops_per_image()
        return self._memo[("gflops", image_size)]

    def passes_per_second(self, image_size: int | None = None) -> float:
        """CLIP image forward passes per second on this machine: best of a few timed probe batches."""
        image_size = image_size or self.image_size
        if ("speed", image_size) not in self._memo:
            backbone = self.backbone(image_size)
            pixels = torch.randn(PROBE_PASSES, 3, backbone.image_size, backbone.image_size)
            backbone.encode_images(pixels)  # warm-up
            times = []
            for _ in range(PROBE_REPEATS):
                start = time.perf_counter()
                backbone.encode_images(pixels)
                if backbone.device.type == "cuda":
                    torch.cuda.synchronize(backbone.device)
                times.append(time.perf_counter() - start)
            self._memo[("speed", image_size)] = PROBE_PASSES / min(times)
        return self._memo[("speed", image_size)]

    def device_description(self) -> str:
        """Where the speed figures were measured: `cpu`, or `cuda:0 (<GPU name>)`."""
        device = self.backbone().device
        if device.type == "cuda":
            return f"{device} ({torch.cuda.get_device_name(device)})"
        return str(device)

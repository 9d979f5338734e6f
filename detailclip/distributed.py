"""Feature extraction on a Ray cluster: `extract_features(..., cluster=RayCluster(address))`.

The driver reads the image bytes (nodes need no shared filesystem) and sends the same batches as
the local path, in order, to `FeatureWorker` actors: each rebuilds the driver's backbone once from
its `load_args` (checked against the driver's identity before any result is used), on one GPU
when the cluster has GPUs, else on one CPU with one torch thread, decodes, cuts and encodes like
`patch_encoder.encode_batch`, and returns fp16 features and level ids. The driver writes the cache, so
a killed driver resumes from it. A lost actor is restarted and its batches retried
(`RAY_RETRIES` times).
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import numpy as np

from infra.cluster import ClusterError, RayCluster, connect
from infra.errors import ToolkitError

from .backbones import Backbone, load_backbone
from .images import ImageError, decode_image
from .patch_encoder import CutOptions, Encoded, Pending, encode_batch

RAY_RETRIES = 3
ACTOR_CPUS = 1
BATCHES_PER_ACTOR = 2  # in flight at once: one encoding, one on its way


class DistributedError(ToolkitError, ValueError):
    """Ray feature extraction failed: no cluster, a backbone that differs on a node, an actor lost for good."""


class FeatureWorker:
    """Ray actor: the backbone of `load_args`, built once, encoding batches of image bytes."""

    def __init__(self, load_args: dict, gpu: bool):
        import torch

        torch.set_num_threads(ACTOR_CPUS)
        self.backbone = load_backbone(**load_args, device="cuda" if gpu else "cpu")

    def identity(self) -> tuple[dict, int]:
        return self.backbone.identity, self.backbone.embed_dim

    def encode(self, cut: CutOptions, batch: list[tuple[str, bytes, list | None]], max_pixels: int) -> Encoded:
        """(fp16 features, int16 levels) of each (name, image bytes, object boxes)."""
        decoded = [decode_image(data, name, max_pixels) for name, data, _ in batch]
        return encode_batch(self.backbone, cut, decoded, [bboxes for _, _, bboxes in batch])


@contextlib.contextmanager
def ray_encoder(cluster: RayCluster, backbone: Backbone, cut: CutOptions, max_pixels: int):
    """Connected to `cluster` (unless this process is already): yields encode(batches), which
    yields (batch, encoded) as FeatureWorker actors finish them (started on the first batch)."""
    import ray

    if backbone.load_args is None:
        raise DistributedError(f"backbone {backbone.name} ({backbone.pretrained}) cannot be rebuilt on a Ray cluster")
    try:
        owner = connect(cluster.address)
    except ClusterError as e:
        raise DistributedError(str(e)) from None
    try:
        yield lambda batches: _run(backbone, cut, max_pixels, batches)
    finally:
        if owner:
            ray.shutdown()


def _run(backbone: Backbone, cut: CutOptions, max_pixels: int, batches: Iterable[list[Pending]]) -> Iterator[tuple[list[Pending], Encoded]]:
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    limit = max(1, gpus or int(resources.get("CPU", 1)))
    actor_class = ray.remote(FeatureWorker).options(
        num_cpus=ACTOR_CPUS, num_gpus=1 if gpus else 0, max_restarts=RAY_RETRIES, max_task_retries=RAY_RETRIES,
    )
    expected = backbone.identity, backbone.embed_dim
    actors, checks, load, running = [], [], [], {}  # per actor: identity to check (None: checked), batches in flight

    def finish_one() -> tuple[list[Pending], Encoded]:
        [ref], _ = ray.wait(list(running), num_returns=1)
        batch, actor = running.pop(ref)
        load[actor] -= 1
        if checks[actor] is not None:
            built = _get(checks[actor])
            if built != expected:
                raise DistributedError(f"a Ray node builds another {backbone.name} than this process "
                                       f"({built[0]} vs {expected[0]}): are its weights the same?")
            checks[actor] = None
        return batch, [(np.array(features), np.array(levels)) for features, levels in _get(ref)]

    try:
        for batch in batches:
            if len(actors) < limit:
                actors.append(actor_class.remote(backbone.load_args, bool(gpus)))
                checks.append(actors[-1].identity.remote())
                load.append(0)
            while min(load) >= BATCHES_PER_ACTOR:
                yield finish_one()
            actor = load.index(min(load))
            jobs = [(item.path, item.image, item.bboxes) for item in batch]
            running[actors[actor].encode.remote(cut, jobs, max_pixels)] = batch, actor
            load[actor] += 1
        while running:
            yield finish_one()
    finally:
        for handle in actors:
            ray.kill(handle)


def _get(ref):
    """ray.get with Ray's failures as one-line errors (an image's own error as itself)."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, ImageError):
            raise e.cause from None
        raise DistributedError(f"feature extraction failed on Ray: {str(e.cause).splitlines()[0]}") from None
    except ray.exceptions.RayError as e:
        raise DistributedError(f"Ray actor failed: {str(e).splitlines()[0]}") from None

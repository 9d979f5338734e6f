"""One bench call: read a data source, build the protocol's labels, run each method, write one record per run.

Backbone choice with a DetailCLIP checkpoint: the checkpoint's backbone, weights, backbone seed and
input size are adopted (its features only make sense there); naming a different --backbone,
--pretrained or --seed is refused. Without a checkpoint the defaults of `detailclip.backbones` apply.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from detailclip.cover import begins_with
from infra.atomic import Writer
from infra.cluster import RayCluster
from infra.errors import ToolkitError
from infra.lock import folder_lock

from .context import BenchContext
from .evaluation import evaluate
from .methods import Method, create_method
from .protocol import Bucket, Protocol, Relevance
from .provenance import software_versions, standard_claim
from .results import SCHEMA_VERSION, SCORES_SUFFIX, run_id, run_stem, scores_writer, write_run
from .sources import Source, SourceSpec

LATENCY_REPEATS = 5
DEFAULT_COVER_K = 10


class BenchError(ToolkitError, ValueError):
    """Bad input to a bench call (one line, shown to the user)."""


@dataclass
class BenchConfig:
    source: SourceSpec
    models: list[str]
    backbone: str | None = None
    pretrained: str | None = None
    seed: int | None = None
    checkpoint: Path | None = None
    k: int = 10
    buckets: list[Bucket] | None = None
    min_visible_pixels: int = 0
    templates: str | None = None  # None: the source's own prompts, else detailclip.text.DEFAULT_TEMPLATES
    cover_k: int | str | None = None  # or "auto"
    out: Path = Path("results")
    save_scores: bool = False
    skip_existing: bool = False
    allow_incomplete: bool = False  # score a split whose meta promises images that are not all there
    cache_dir: Path | None = None
    batch_size: int = 4
    device: str | None = None
    progress: bool = True
    cluster: RayCluster | None = None  # extract features on this Ray cluster (None: here)


def resolve_backbone(checkpoint: Path | None = None, backbone: str | None = None, pretrained: str | None = None,
                     seed: int | None = None, cover_k: int | str | None = None) -> dict:
    """Backbone name, weights, seed, input size, cover k and detailclip's cover k (fusion_k: the given
    cover_k, None for the checkpoint's) of a call (see the module docstring)."""
    from detailclip.backbones import DEFAULT_BACKBONE, default_pretrained, is_untrained
    from detailclip.checkpoint import read_encoding_config

    if checkpoint is None:
        backbone = backbone or DEFAULT_BACKBONE
        return {"backbone": backbone, "pretrained": pretrained or default_pretrained(backbone),
                "seed": seed or 0, "image_size": None, "cover_k": cover_k or DEFAULT_COVER_K, "fusion_k": cover_k}  # fmt: skip
    config = read_encoding_config(checkpoint)
    adopted = {"backbone": config["backbone"], "pretrained": config["pretrained"], "seed": config.get("backbone_seed", 0)}
    untrained = is_untrained(adopted["pretrained"])
    for key, given in (("backbone", backbone), ("pretrained", pretrained), ("seed", seed)):
        if given is None or str(given) == str(adopted[key]):
            continue
        if (key == "pretrained" and untrained and is_untrained(given)) or (key == "seed" and not untrained):
            continue  # "none" and "random" name the same weights; a seed only matters for random weights
        raise BenchError(f"checkpoint {checkpoint} was trained with {key} {adopted[key]!r}, not {given!r}")
    default_k = config["k"] if begins_with(config["scheme"], "cc") else DEFAULT_COVER_K  # a Complete Cover's k
    return {**adopted, "image_size": config.get("image_size"), "cover_k": cover_k or default_k, "fusion_k": cover_k}


def default_weights(checkpoint: Path | None, backbone: str | None, pretrained: str | None,
                    family: str | None = None) -> tuple[Path | None, str | None]:
    """(checkpoint, pretrained) as given; when none of the three is named, the data's scene family's shipped
    fusion checkpoint and tag (`detailclip.registry.FAMILY_WEIGHTS`; clevr's for data of no family), so
    every method cuts the shipped fusion's cover whether or not detailclip runs (`resolve_backbone`)."""
    if checkpoint is not None or backbone is not None or pretrained is not None:
        return checkpoint, pretrained
    from detailclip.registry import FAMILY_WEIGHTS

    tag, fusion = FAMILY_WEIGHTS.get(family or "clevr", FAMILY_WEIGHTS["clevr"])
    return fusion, tag


def query_latency_ms(index, query: torch.Tensor, k: int) -> float:
    """Median time to score one query embedding against the whole index and take its top k."""
    times = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        index.score(query[None]).topk(min(k, index.n_images), dim=1)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


@dataclass
class Prepared:
    """What every method of a call shares: data, labels, context, the identity of its runs and the standard
    split the data claims to be (benchmark.provenance; not part of the identity)."""

    source: Source
    relevance: Relevance
    ctx: BenchContext
    identity: dict
    standard: dict | None

    @property
    def classes(self) -> list[str]:
        return list(self.source.classes)


def prepare(cfg: BenchConfig) -> Prepared:
    from detailclip.backbones import pretrained_id
    from detailclip.text import resolve_templates, templates_for

    source = cfg.source.open(cfg.allow_incomplete)
    templates = templates_for(cfg.templates, source.prompts)
    resolve_templates(templates)
    buckets = cfg.buckets or source.default_buckets
    if not buckets:
        raise BenchError(f"{source.dataset} {source.split} has a single object scale: pass --buckets")
    protocol = Protocol(source.classes, tuple(buckets), cfg.min_visible_pixels)
    chosen = resolve_backbone(cfg.checkpoint, cfg.backbone, cfg.pretrained, cfg.seed, cfg.cover_k)
    ctx = BenchContext.on_backbone(source, chosen, device=cfg.device, checkpoint=cfg.checkpoint, cache_dir=cfg.cache_dir,
                                   batch_size=cfg.batch_size, progress=cfg.progress, cluster=cfg.cluster,
                                   templates=templates)  # fmt: skip
    identity = {
        "task": "class_retrieval", "backbone": chosen["backbone"], "pretrained": chosen["pretrained"],
        "pretrained_id": pretrained_id(chosen["pretrained"]), "backbone_image_size": chosen["image_size"],
        "dataset": source.dataset, "split": source.split, "split_hash": source.content_hash,
        "protocol": {**protocol.settings(), "templates": templates, "k": cfg.k}, "seed": chosen["seed"],
    }  # fmt: skip
    return Prepared(source, protocol.relevance(source.images), ctx, identity, standard_claim(source))


def run_method(cfg: BenchConfig, p: Prepared, method: Method, identity: dict, stem: str) -> tuple[dict, Writer | None]:
    """Encode, score and evaluate one method; return its run record and, if asked, the writer of its scores."""
    buckets = [Bucket(lo, hi) for lo, hi in identity["protocol"]["buckets"]]
    start = time.perf_counter()
    encoded = method.encode(p.ctx)
    encode_seconds = time.perf_counter() - start
    text = p.ctx.class_embeddings(p.classes, identity["protocol"]["templates"], encoded.image_size)
    scores = encoded.index.score(text).numpy()
    metrics = evaluate(scores, p.classes, p.relevance.overall, [b.name for b in buckets], p.relevance.per_bucket, cfg.k)
    scores_file = f"{stem}{SCORES_SUFFIX}" if cfg.save_scores else None
    saved = scores_writer(scores, p.classes, [image.name for image in p.source.images], [b.name for b in buckets],
                          [[b.lo, b.hi] for b in buckets], p.relevance.overall, p.relevance.per_bucket,
                          cfg.k) if scores_file else None  # fmt: skip
    cost = {
        "vectors_per_image": encoded.index.vectors_per_image,
        "forward_passes_per_image": encoded.forward_passes_per_image,
        "gflops_per_image": encoded.gflops_per_image,
        "encode_images_per_s": encoded.encode_images_per_s,
        "query_latency_ms": query_latency_ms(encoded.index, text[0], cfg.k),
        "encode_seconds_this_run": encode_seconds,
        "encode_device": p.ctx.device_description(),
        "encode_threads": torch.get_num_threads(),
    }
    record = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id(identity), **identity, "standard": p.standard,
        "n_images": len(p.source.images),
        "n_images_expected": p.source.n_images_expected, "complete": len(p.source.images) == p.source.n_images_expected,
        "metrics": metrics, "cost": cost, **({"cover_k": encoded.cover_k} if encoded.cover_k else {}),
        "software": software_versions(), "scores_file": scores_file,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    return record, saved


def run_bench(cfg: BenchConfig, echo: Callable[[str], None] = print) -> list[Path]:
    """Run every requested method, holding the results folder's lock; return the run JSON paths (written,
    or found with skip_existing)."""
    methods = [create_method(name) for name in dict.fromkeys(cfg.models)]
    if any(m.name == "detailclip" for m in methods) and cfg.checkpoint is None:
        raise BenchError("model detailclip needs --checkpoint (a file written by `python cli.py train`)")
    p = prepare(cfg)
    with folder_lock(cfg.out, purpose="bench"):  # one writer per results folder
        return _run_methods(cfg, p, methods, echo)


def _run_methods(cfg: BenchConfig, p: Prepared, methods: list[Method], echo: Callable[[str], None]) -> list[Path]:
    runs = []
    for method in methods:
        identity = {**p.identity, "method": method.name, "method_settings": method.settings(p.ctx)}
        stem = run_stem(method.name, identity["backbone"], identity["pretrained"], p.source.split, run_id(identity))
        path = Path(cfg.out) / f"{stem}.json"
        runs.append((method, identity, stem, path, cfg.skip_existing and path.exists()))
    p.ctx.plan(method.features_read(p.ctx) for method, *_, skip in runs if not skip)  # extracted once for them all
    for method, identity, stem, path, skip in runs:
        if skip:
            echo(f"skip {method.name}: {path} exists")
            continue
        record, scores = run_method(cfg, p, method, identity, stem)
        write_run(path, record, scores)  # the scores and the record appear together or not at all
        score = record["metrics"]["overall"]["mAP"]
        echo(f"{method.name}: mAP {'-' if score is None else f'{score:.4f}'} -> {path}")
    return [path for *_, path, _ in runs]

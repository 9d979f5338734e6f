"""How far one vector per image can go under the fusion's training objective (issue #14).

    python -m measure.objective_ceiling --data DIR --split val --scores RUN.scores.npz
        [--cache-dir DIR] [--variant text_weight=0.25,patch_weight=0 ...] [--steps 1500] [--quiet]

For each variant of the distillation loss (detailclip.recipe.LossConfig fields, plus batch_size and
the text query set `queries`; the shipped recipe first), fits a free vector to every image of the
split, with no fusion model and so no generalisation: Adam on the loss against the Complete Cover teacher, in random batches as in
training. The benchmark's class queries then rank the images by those vectors, and mAP overall and
per scale bucket comes from the labels of a saved bench run of the same split (any method's
`.scores.npz`). A fusion trained with a loss reaches on this split at most about its ceiling here;
a larger model or more data cannot lift a student above what its objective allows. The first row
is no fit: unit vectors built to rank the images for every class query exactly as the teacher does
(possible whenever the classes are no more than the embedding width), so what one vector can hold
is the teacher's mAP itself.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

from benchmark.evaluation import evaluate
from clevr_ds.dataset import DatasetError
from detailclip.backbones import DEFAULT_BACKBONE, DEFAULT_PRETRAINED, average_prompts, load_backbone
from detailclip.data import clevr_split
from detailclip.features import extract_features
from detailclip.recipe import QUERY_SETS, FusionRecipe, LossConfig
from detailclip.training.fusion_trainer import (FeatureBank, teacher_calibration, teacher_targets, text_pair_weights,
                                                training_queries)  # fmt: skip
from detailclip.training.losses import QueryCalibration, distillation_loss

RECIPE = FusionRecipe()


def parse_variant(text: str) -> tuple[LossConfig, int, str]:
    """'text_weight=0.25,batch_size=64,queries=classes' -> (the shipped loss with those fields,
    batch size, query set)."""
    loss = RECIPE.train.loss
    known = {f.name: type(getattr(loss, f.name)) for f in fields(LossConfig)
             if isinstance(getattr(loss, f.name), (float, int, str, bool))} | {"batch_size": int, "queries": str}
    changes = {"batch_size": RECIPE.train.batch_size, "queries": RECIPE.queries}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in known or not value:
            raise SystemExit(f"error: bad variant item {item!r} (KEY=VALUE, keys: {', '.join(sorted(known))})")
        try:
            changes[key] = parse_value(known[key], value)
        except ValueError:
            expected = {int: "an integer", float: "a number", bool: "true or false"}[known[key]]
            raise SystemExit(f"error: {key} must be {expected}, not {value!r}") from None
    batch, queries = changes.pop("batch_size"), changes.pop("queries")
    if queries not in QUERY_SETS:
        raise SystemExit(f"error: unknown query set {queries!r} (known: {', '.join(QUERY_SETS)})")
    try:
        return LossConfig(**changes), batch, queries  # the defaults are the shipped loss (FusionRecipe())
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def parse_value(kind: type, value: str):
    """A variant's value as its field's type (a bool from true or false); ValueError otherwise."""
    if kind is not bool:
        return kind(value)
    if value.lower() not in ("true", "false"):
        raise ValueError(value)
    return value.lower() == "true"


def fit_free_vectors(bank: FeatureBank, queries: torch.Tensor, vocabulary: torch.Tensor, loss: LossConfig, batch: int,
                     steps: int, lr: float, seed: int) -> torch.Tensor:
    """One unit vector per image [N, D] minimising `loss` against its teacher (the calibrated one scores
    against the class `vocabulary` [C, D]), started at the whole image; Adam with cosine decay."""
    targets = teacher_targets(bank, queries, loss.teacher_levels, teacher_calibration(loss, vocabulary))
    weights = text_pair_weights(bank, queries, targets, loss)
    vectors = bank.features[:, 0].float().clone().requires_grad_(True)
    calibration = QueryCalibration(len(queries)).to(vectors.device) if loss.calibrate else None
    optimizer = torch.optim.Adam([vectors, *(calibration.parameters() if calibration is not None else [])], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)  # decays to 0: the vectors settle
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = torch.randperm(len(bank), generator=generator)[:batch]
        features, padding, levels = bank.batch(ids)
        parts = distillation_loss(F.normalize(vectors[ids], dim=-1), features, padding, levels, queries,
                                  targets[ids], loss, generator, weights[ids] if weights is not None else None,
                                  calibration)
        optimizer.zero_grad()
        parts["loss"].backward()
        optimizer.step()
        schedule.step()
    return F.normalize(vectors.detach(), dim=-1)


def teacher_in_one_vector(targets: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Unit vectors [N, D] whose cosines with the Q <= D `queries` [Q, D] are c * (targets - their
    mean over the images) for one c > 0: every query ranks the images exactly as the teacher's
    `targets` [N, Q] do. The part in the queries' span solves for the centred targets (least
    squares, exact for independent queries), scaled to norm <= 1/2; a unit vector orthogonal to that
    span fills each norm up to 1."""
    span = (torch.linalg.pinv(queries.float()) @ (targets - targets.mean(dim=0)).T.float()).T
    span = 0.5 * span / span.norm(dim=-1).max()
    orthogonal = torch.linalg.svd(queries.float())[2][-1]
    return span + orthogonal * (1 - span.square().sum(dim=-1, keepdim=True)).sqrt()


@click.command(help=__doc__.split("\n\n")[0],
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--data", type=click.Path(path_type=Path), required=True, help="CLEVR-DS folder")
@click.option("--split", default="val", show_default=True)
@click.option("--scores", type=click.Path(path_type=Path), required=True, help="a bench run's .scores.npz of that split (labels)")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="feature cache")
@click.option("--variant", "variant_texts", multiple=True, help="KEY=VALUE,... (repeatable)")
@click.option("--steps", type=int, default=1500, show_default=True)
@click.option("--lr", type=float, default=1e-2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="no progress bar")
def main(data: Path, split: str, scores: Path, cache_dir: Path | None, variant_texts: tuple[str, ...], steps: int,
         lr: float, seed: int, quiet: bool) -> None:
    variants = [("shipped", parse_variant(""))] + [(v, parse_variant(v)) for v in variant_texts]
    try:
        images = clevr_split(data, split)
    except DatasetError as e:
        raise SystemExit(f"error: {e}") from None
    try:
        with np.load(scores) as saved:
            labels = {k: saved[k] for k in ("images", "classes", "labels_overall", "labels_buckets", "bucket_names", "k")}
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"error: cannot read the labels of {scores}: {e}") from None
    if [p.name for p in images.paths] != labels["images"].tolist() or images.classes != labels["classes"].tolist():
        raise SystemExit(f"error: {scores} is a run of other images or classes than {data} {split}")
    backbone = load_backbone(DEFAULT_BACKBONE, DEFAULT_PRETRAINED, seed=RECIPE.train.seed)
    prompts = backbone.prompt_embeddings(images.classes, RECIPE.templates).float()
    bank = FeatureBank.from_items(extract_features(backbone, images.paths, RECIPE.scheme, RECIPE.k, cache_dir,
                                                   progress=not quiet),
                                  backbone.device)
    class_queries = average_prompts(prompts).to(backbone.device)
    names = labels["bucket_names"].tolist()
    print(f"{split}: {len(bank)} images; mAP of free vectors fitted to each loss ({steps} steps)")
    print(f"{'variant':<44} {'overall':>8} " + " ".join(f"{n:>14}" for n in names))

    def report(name: str, vectors: torch.Tensor) -> None:
        metrics = evaluate((vectors @ class_queries.T).T.cpu().numpy(), images.classes, labels["labels_overall"],
                           names, labels["labels_buckets"], int(labels["k"]))
        row = [metrics["overall"]["mAP"]] + [metrics["buckets"][n]["mAP"] for n in names]
        cells = ("-" if v is None else f"{v:.3f}" for v in row)  # None: a bucket without positives
        print(f"{name:<44} " + " ".join(f"{c:>{8 if i == 0 else 14}}" for i, c in enumerate(cells)), flush=True)

    if len(class_queries) < class_queries.shape[1]:  # room for a direction orthogonal to every class
        shipped = RECIPE.train.loss
        calibration = teacher_calibration(shipped, class_queries)
        teacher = teacher_targets(bank, class_queries, shipped.teacher_levels, calibration)
        report("teacher, held exactly by one vector", teacher_in_one_vector(teacher, class_queries))
    for name, (loss, batch, queries) in variants:
        report(name, fit_free_vectors(bank, training_queries(prompts, queries).to(backbone.device), class_queries, loss,
                                      batch, steps, lr, seed))


if __name__ == "__main__":
    main()

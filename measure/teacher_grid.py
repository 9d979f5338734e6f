"""The calibrated teacher's settings on a split, beside the plain teachers at the same cover (issue #28).

    python -m measure.teacher_grid --data output/shift-val --split val-small --cover-k 10 --cover-k auto
    python -m measure.teacher_grid --data output/shift-val --split val-small --cover-k auto --scheme cc-fine

For each cover, prints mAP overall and per scale bucket of `cc-max`, `grid-max` and `cc-cal` at every
(temperature, level penalty) of the grid, on the split's protocol and default weights. --scheme cc-fine
scores `cc-max` and `cc-cal` over the cover with magnified windows (`detailclip.cover`) instead of
Complete Cover's own; `grid-max` stays the k x k grid. Features come from --cache-dir, so a second run
only scores.
"""

from __future__ import annotations

from pathlib import Path

import click

from benchmark.metrics import Ranking, summarise
from benchmark.methods import create_method
from benchmark.methods.calibrated import CCCalibrated
from benchmark.runner import BenchConfig, default_weights, prepare
from benchmark.sources import SourceSpec
from detailclip.cover import parse_cover_k
from detailclip.recipe import MAX_K


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


@click.command(help=__doc__.split("\n\n")[0],
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--data", required=True, type=click.Path(path_type=Path))
@click.option("--split", default="val", show_default=True)
@click.option("--cover-k", "covers", multiple=True, default=("10", "auto"), show_default=True)
@click.option("--temperatures", default="1,2,3,5,10", show_default=True)
@click.option("--penalties", default="0,0.025,0.05,0.1,0.2", show_default=True)
@click.option("--scheme", type=click.Choice(["cc", "cc-fine"]), default="cc", show_default=True,
              help="the windows cc-max and cc-cal score")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path("output/feature-cache"), show_default=True)
def main(data, split, covers, temperatures, penalties, scheme, cache_dir):
    spec = SourceSpec(data=data, split=split)
    _, pretrained = default_weights(None, None, None, spec.family())
    for cover in covers:
        config = BenchConfig(source=spec, models=["cc-max"], pretrained=pretrained, cache_dir=cache_dir, progress=False,
                             cover_k=parse_cover_k(cover, MAX_K))  # fmt: skip
        prepared = prepare(config)
        ctx, relevance = prepared.ctx, prepared.relevance
        queries = ctx.vocabulary()
        labels = [relevance.overall, *relevance.per_bucket]

        def row(name: str, method) -> str:
            ranking = Ranking(method.encode(ctx).index.score(queries))
            figures = [summarise(ranking.metrics(lab, hit_ks=(1,), precision_k=10))["mAP"] for lab in labels]
            return f"| {name} | " + " | ".join(f"{m:.3f}" for m in figures) + " |"

        print(f"\ncover k = {cover}, {len(prepared.source.images)} images of {data} {split}\n")
        print("| teacher | mAP | " + " | ".join(b.name for b in relevance.buckets) + " |")
        print("|---|" + "---:|" * (1 + len(relevance.buckets)))
        suffix = "" if scheme == "cc" else f" over {scheme}"
        cc_max = create_method("cc-max")
        cc_max.scheme = scheme
        print(row(f"cc-max{suffix}", cc_max))
        print(row("grid-max", create_method("grid-max")))
        for temperature in floats(temperatures):
            for penalty in floats(penalties):
                method = CCCalibrated()
                method.scheme, method.temperature, method.level_penalty = scheme, temperature, penalty
                print(row(f"cc-cal{suffix}, temperature {temperature:g}, level penalty {penalty:g}", method), flush=True)


if __name__ == "__main__":
    main()

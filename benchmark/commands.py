"""Click commands of the benchmark package: `bench` (run methods on a split) and `leaderboard` (merge runs)."""

from __future__ import annotations

from pathlib import Path

import click

from clevr_ds.dataset import DEFAULT_ROOT


# Listed here so that --help stays fast (the registry imports torch); a test keeps it equal to the registry.
METHOD_NAMES = ("clip", "clip-hires", "grid-mean", "grid-max", "cc-mean", "cc-max", "oracle-crop", "s2", "detailclip")


def _cache_dir(option: Path | None, out: Path) -> Path | None:
    if option is None:
        return out / "feature_cache"
    return None if str(option).lower() == "none" else option


@click.command()
@click.option("--model", "models", multiple=True, default=("all",), show_default=True, metavar="NAME",
              help=f"Method(s) to run, repeatable or comma-separated: {', '.join(METHOD_NAMES)}; baselines (all but detailclip) or all.")
@click.option("--checkpoint", type=click.Path(path_type=Path),
              help="DetailCLIP checkpoint from `python cli.py train` (default with the default backbone: the shipped one).")
@click.option("--backbone", help="open_clip architecture (default: the checkpoint's, else detailclip's default).")
@click.option("--pretrained", help="open_clip pretrained tag, checkpoint file, or none (random weights).")
@click.option("--seed", type=int, help="Seed of random backbone weights (default: the checkpoint's, else 0).")
@click.option("--data", type=click.Path(path_type=Path), default=Path(DEFAULT_ROOT), show_default=True, help="CLEVR-DS folder.")
@click.option("--split", default="test", show_default=True)
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True, help="k of precision@k and hit@k (hit@1, @5 always).")
@click.option("--buckets", help="Scale buckets: edges 0.01,0.02,0.05,0.1 or ranges 0.01-0.02,0.05-0.1 (default: from the split's scales).")
@click.option("--min-visible-pixels", type=click.IntRange(min=0), default=0, show_default=True,
              help="An object counts as present from this many visible pixels (on top of the dataset's `visible`).")
@click.option("--templates", default="openai80", show_default=True, help="Prompt template set of the class queries.")
@click.option("--cover-k", type=click.IntRange(min=1), help="k of Complete Cover and of the grid (default: the checkpoint's, else 10).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True, help="Results folder.")
@click.option("--save-scores", is_flag=True, help="Also write the query x image scores with the labels (.scores.npz).")
@click.option("--skip-existing", is_flag=True, help="Skip runs whose result file already exists.")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Patch-feature cache [default: OUT/feature_cache]; none: no cache.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Images cut and encoded together.")
@click.option("--device", help="torch device (default: cuda when available).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def bench(models, checkpoint, backbone, pretrained, seed, data, split, k, buckets, min_visible_pixels, templates, cover_k,
          out, save_scores, skip_existing, cache_dir, batch_size, device, quiet):  # fmt: skip
    """Class-prompted text-to-image retrieval on CLEVR-DS: mAP, hit@k, precision@k per scale bucket."""
    from clevr_ds.dataset import DatasetError

    from .leaderboard import build_table, to_markdown
    from .methods import method_names
    from .protocol import parse_buckets
    from .results import load_run
    from .runner import BenchConfig, BenchError, run_bench

    names = [n.strip() for m in models for n in m.split(",") if n.strip()]
    groups = {"all": method_names(), "baselines": [n for n in method_names() if n != "detailclip"]}
    names = [n for name in names for n in groups.get(name, [name])]
    unknown = [n for n in names if n not in method_names()]
    if unknown:
        raise click.ClickException(f"unknown model {unknown[0]!r} (known: {', '.join(method_names())}, baselines, all)")
    if checkpoint is None and "detailclip" in names and backbone is None and pretrained is None:
        from detailclip.backbones import DEFAULT_FUSION_CHECKPOINT

        checkpoint = DEFAULT_FUSION_CHECKPOINT
    if checkpoint is not None and not checkpoint.is_file():
        raise click.ClickException(f"no checkpoint file {checkpoint}")
    try:
        cfg = BenchConfig(
            data=data, models=names, split=split, backbone=backbone, pretrained=pretrained, seed=seed,
            checkpoint=checkpoint, k=k, buckets=parse_buckets(buckets) if buckets else None,
            min_visible_pixels=min_visible_pixels, templates=templates, cover_k=cover_k, out=out,
            save_scores=save_scores, skip_existing=skip_existing,
            cache_dir=_cache_dir(cache_dir, out),
            batch_size=batch_size, device=device, progress=not quiet,
        )  # fmt: skip
        paths = run_bench(cfg, echo=lambda line: click.echo(line, err=True))
    except (BenchError, DatasetError, ValueError) as e:
        raise click.ClickException(str(e).splitlines()[0]) from None
    click.echo(to_markdown(build_table([(load_run(p), p.name) for p in paths])), nl=False)


@click.command()
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Leaderboard CSV (default: RESULTS/leaderboard.csv); .md and .png beside it.")
def leaderboard(results, out):
    """Merge the run records in RESULTS into a leaderboard CSV, a markdown table and a plot of mAP per bucket."""
    from .leaderboard import build_table, to_markdown, write_leaderboard
    from .results import load_runs

    if not results.is_dir():
        raise click.ClickException(f"no results folder {results}")
    try:
        records = load_runs(results)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if not records:
        raise click.ClickException(f"no run records (*.json) in {results}")
    paths = write_leaderboard(records, out or results / "leaderboard.csv")
    click.echo(to_markdown(build_table(records)), nl=False)
    click.echo(f"wrote {paths['csv']}, {paths['markdown']}, {paths['plot']}", err=True)


COMMANDS = [bench, leaderboard]

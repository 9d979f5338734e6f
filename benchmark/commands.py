"""Click commands of the benchmark package: `bench` (run methods on a split) and `leaderboard` (merge runs)."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from clevr_ds.dataset import DEFAULT_ROOT
from detailclip.commands import allow_incomplete_option, cache_dir_option, feature_options

# Listed here so that --help stays fast (the registry imports torch); a test keeps it equal to the registry.
METHOD_NAMES = ("clip", "clip-hires", "grid-mean", "grid-max", "cc-mean", "cc-max", "oracle-crop", "s2", "detailclip")


def source_options(data_default: Path | None, data_help: str):
    """Click options of a data source (--data, --split, --coco, --image-root, --dota, --classes), passed
    to the command as one argument `source`: a benchmark.sources.SourceSpec (flag conflicts: one line)."""

    def decorate(command):
        @click.option("--data", type=click.Path(path_type=Path), default=data_default, show_default=data_default is not None, help=data_help)
        @click.option("--split", default="test", show_default=True, help="Split of the CLEVR-DS folder.")
        @click.option("--coco", type=click.Path(path_type=Path), help="COCO instances JSON instead of a CLEVR-DS split (with --image-root).")
        @click.option("--image-root", type=click.Path(path_type=Path), help="Folder of the --coco images (file_name is relative to it).")
        @click.option("--dota", type=click.Path(path_type=Path), help="DOTA v1/v1.5 folder (images/, labelTxt/) instead of a CLEVR-DS split.")
        @click.option("--classes", "classes_file", type=click.Path(path_type=Path),
                      help="Class names, one per line: --coco: prompts in category order; --dota: the categories (default: DOTA-v1.5's).")
        @functools.wraps(command)
        def run(*args, data, split, coco, image_root, dota, classes_file, **kwargs):
            from .sources import SourceSpec

            try:
                spec = SourceSpec(None if coco or dota else data, split, coco, image_root, dota, classes_file)
            except ValueError as e:
                raise click.ClickException(str(e)) from None
            return command(*args, source=spec, **kwargs)

        return run

    return decorate


@click.command()
@click.option("--model", "models", multiple=True, default=("all",), show_default=True, metavar="NAME",
              help=f"Method(s) to run, repeatable or comma-separated: {', '.join(METHOD_NAMES)}; baselines (all but detailclip) or all.")
@click.option("--checkpoint", type=click.Path(path_type=Path),
              help="DetailCLIP checkpoint from `python cli.py train` (default with the default backbone: the shipped one).")
@click.option("--backbone", help="open_clip architecture (default: the checkpoint's, else detailclip's default).")
@click.option("--pretrained", help="open_clip pretrained tag, checkpoint file, or none (random weights).")
@click.option("--seed", type=int, help="Seed of random backbone weights (default: the checkpoint's, else 0).")
@source_options(Path(DEFAULT_ROOT), "CLEVR-DS folder.")
@click.option("--precision-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="k of precision@k and hit@k (hit@1, @5 always); Complete Cover's k is --cover-k.")
@click.option("--buckets", help="Scale buckets: edges 0.01,0.02,0.05,0.1 or ranges 0.01-0.02,0.05-0.1 (default: from the CLEVR-DS split's scales; COCO, DOTA: 3 log-even over the observed range).")
@click.option("--min-visible-pixels", type=click.IntRange(min=0), default=0, show_default=True,
              help="An object counts as present from this many visible pixels (on top of the dataset's `visible`).")
@click.option("--templates", default="openai80", show_default=True, help="Prompt template set of the class queries.")
@click.option("--cover-k", type=click.IntRange(min=1), help="k of Complete Cover and of the grid (default: the checkpoint's, else 10).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True, help="Results folder.")
@click.option("--save-scores/--no-save-scores", default=True, show_default=True,
              help="Also write the query x image scores with the labels (.scores.npz; the report's galleries use them).")
@click.option("--skip-existing", is_flag=True, help="Skip runs whose result file already exists.")
@allow_incomplete_option
@feature_options("OUT/feature_cache")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def bench(models, checkpoint, backbone, pretrained, seed, source, k, buckets,
          min_visible_pixels, templates, cover_k, out, save_scores, skip_existing, allow_incomplete, cache_dir, batch_size,
          device, cluster, quiet):  # fmt: skip
    """Class-prompted text-to-image retrieval on CLEVR-DS, COCO or DOTA: mAP, hit@k, precision@k per scale bucket."""
    from clevr_ds.dataset import DatasetError

    from .leaderboard import build_table, to_markdown
    from .methods import method_names
    from .buckets import parse_buckets
    from .results import load_run
    from .runner import BenchConfig, BenchError, default_checkpoint, run_bench

    names = [n.strip() for m in models for n in m.split(",") if n.strip()]
    groups = {"all": method_names(), "baselines": [n for n in method_names() if n != "detailclip"]}
    names = [n for name in names for n in groups.get(name, [name])]
    unknown = [n for n in names if n not in method_names()]
    if unknown:
        raise click.ClickException(f"unknown model {unknown[0]!r} (known: {', '.join(method_names())}, baselines, all)")
    checkpoint = default_checkpoint(checkpoint, "detailclip" in names, backbone, pretrained)
    if checkpoint is not None and not checkpoint.is_file():
        raise click.ClickException(f"no checkpoint file {checkpoint}")
    try:
        cfg = BenchConfig(
            source=source, models=names, backbone=backbone, pretrained=pretrained, seed=seed,
            checkpoint=checkpoint, k=k, buckets=parse_buckets(buckets) if buckets else None,
            min_visible_pixels=min_visible_pixels, templates=templates, cover_k=cover_k, out=out,
            save_scores=save_scores, skip_existing=skip_existing, allow_incomplete=allow_incomplete,
            cache_dir=cache_dir_option(cache_dir, out / "feature_cache"),
            batch_size=batch_size, device=device, progress=not quiet, cluster=cluster,
        )  # fmt: skip
        paths = run_bench(cfg, echo=lambda line: click.echo(line, err=True))
    except (BenchError, DatasetError, ValueError) as e:
        raise click.ClickException(str(e).splitlines()[0]) from None
    click.echo(to_markdown(build_table([(load_run(p), p.name) for p in paths])), nl=False)


@click.command()
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path),
              help="Leaderboard CSV (default: RESULTS/leaderboard.csv); .md, .png, .svg and .pdf beside it.")
@click.option("--baseline", "baselines", multiple=True, metavar="NAME",
              help="Also compare every run with this method or run label (repeatable).")
def leaderboard(results, out, baselines):
    """Merge the runs in RESULTS: CSV, markdown and plot of mAP per bucket, with intervals and paired tests."""
    from .leaderboard import build_table, to_markdown, write_leaderboard
    from .results import load_runs

    if not results.is_dir():
        raise click.ClickException(f"no results folder {results}")
    try:
        records = load_runs(results, warn=lambda line: click.echo(line, err=True))
        if not records:
            raise click.ClickException(f"no run records (*.json) in {results}")
        table = build_table(records, baselines)
    except ValueError as e:
        raise click.ClickException(str(e).splitlines()[0]) from None
    paths = write_leaderboard(table, out or results / "leaderboard.csv")
    click.echo(to_markdown(table), nl=False)
    click.echo(f"wrote {', '.join(map(str, paths))}", err=True)


@click.command()
@click.argument("results", type=click.Path(path_type=Path))
@source_options(None, "The split's CLEVR-DS folder, for the image galleries (or --coco / --dota).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True)
@click.option("--baseline", "baselines", multiple=True, help="Also compare every run with this method or run label.")
@click.option("--queries", type=click.IntRange(min=0), default=3, show_default=True, help="Queries shown in the galleries.")
def report(results, source, out, baselines, queries):
    """One self-contained HTML report of RESULTS: leaderboard with intervals, plot, per-class AP, top-5 galleries."""
    from clevr_ds.dataset import DatasetError
    from infra.atomic import text_writer, write_together

    from .report import build_report

    if not results.is_dir():
        raise click.ClickException(f"no results folder {results}")
    try:
        text = build_report(results, source if source.given else None, baselines, queries,
                            warn=lambda line: click.echo(line, err=True))
    except (DatasetError, ValueError) as e:
        raise click.ClickException(str(e).splitlines()[0]) from None
    write_together({out: text_writer(text)})
    click.echo(f"wrote {out} ({len(text) // 1024} KiB)", err=True)


COMMANDS = [bench, leaderboard, report]

"""`clevr-ds bench` (run methods on a split), `leaderboard` (merge runs) and `report` (one HTML page of them)."""

from __future__ import annotations

from pathlib import Path

import click

from infra.errors import first_line

from clevr_ds.dataset import DEFAULT_ROOT

from .options import (allow_incomplete_option, backbone_option, baseline_option, cache_dir_option, checkpoint_option,
                      cover_k_option, feature_options, option, pretrained_option, quiet_option, renamed, seed_option,
                      source_options, templates_option, verify_option)  # fmt: skip

# Listed here so that --help stays fast (the registry imports torch); a test keeps it equal to the registry.
METHOD_NAMES = ("clip", "clip-hires", "grid-mean", "grid-max", "cc-mean", "cc-max", "oracle-crop", "cc-cal", "cc-fine-cal",
                "s2", "detailclip")


@click.command()
@click.option("--model", "models", multiple=True, default=("all",), show_default=True, metavar="NAME",
              help=f"Method(s) to run, repeatable or comma-separated: {', '.join(METHOD_NAMES)}; baselines (all but detailclip) or all.")
@checkpoint_option(help="DetailCLIP checkpoint from `clevr-ds train` (default with the default backbone: the shipped one).")
@backbone_option
@pretrained_option
@seed_option(help="Seed of random backbone weights (default: the checkpoint's, else 0).")
@source_options(Path(DEFAULT_ROOT), "CLEVR-DS folder.")
@click.option("--precision-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="k of precision@k and hit@k (hit@1, @5 always); Complete Cover's k is --cover-k.")
@click.option("--buckets", help="Scale buckets: edges 0.01,0.02,0.05,0.1 or ranges 0.01-0.02,0.05-0.1 (default: from the CLEVR-DS split's scales; COCO, DOTA: 3 log-even over the observed range).")
@option("--min-visible-pixels", type=click.IntRange(min=0), default=0, show_default=True,
        help="An object counts as present from this many visible pixels (on top of the dataset's `visible`).")
@templates_option
@cover_k_option
@option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True, help="Results folder.")
@click.option("--save-scores/--no-save-scores", default=True, show_default=True,
              help="Also write the query x image scores with the labels (.scores.npz; the report's galleries use them).")
@click.option("--skip-existing", is_flag=True, help="Skip runs whose result file already exists.")
@allow_incomplete_option
@feature_options("OUT/feature_cache")
@quiet_option
def bench(models, checkpoint, backbone, pretrained, seed, source, k, buckets,
          min_visible_pixels, templates, cover_k, out, save_scores, skip_existing, allow_incomplete, cache_dir, extract_batch,
          device, cluster, quiet):  # fmt: skip
    """Class-prompted text-to-image retrieval on CLEVR-DS, COCO or DOTA: mAP, hit@k, precision@k per scale bucket."""
    from benchmark.buckets import parse_buckets
    from benchmark.leaderboard import build_table, to_markdown
    from benchmark.methods import method_names
    from benchmark.results import load_run
    from benchmark.runner import BenchConfig, BenchError, default_weights, run_bench
    from clevr_ds.dataset import DatasetError

    names = [n.strip() for m in models for n in m.split(",") if n.strip()]
    groups = {"all": method_names(), "baselines": [n for n in method_names() if n != "detailclip"]}
    names = [n for name in names for n in groups.get(name, [name])]
    unknown = [n for n in names if n not in method_names()]
    if unknown:
        raise click.ClickException(f"unknown model {unknown[0]!r} (known: {', '.join(method_names())}, baselines, all)")
    try:
        checkpoint, pretrained = default_weights(checkpoint, backbone, pretrained, source.family())
        if checkpoint is not None and not checkpoint.is_file():
            raise click.ClickException(f"no checkpoint file {checkpoint}")
        cfg = BenchConfig(
            source=source, models=names, backbone=backbone, pretrained=pretrained, seed=seed,
            checkpoint=checkpoint, k=k, buckets=parse_buckets(buckets) if buckets else None,
            min_visible_pixels=min_visible_pixels, templates=templates, cover_k=cover_k, out=out,
            save_scores=save_scores, skip_existing=skip_existing, allow_incomplete=allow_incomplete,
            cache_dir=cache_dir_option(cache_dir, out / "feature_cache"),
            batch_size=extract_batch, device=device, progress=not quiet, cluster=cluster,
        )  # fmt: skip
        paths = run_bench(cfg, echo=lambda line: click.echo(line, err=True))
    except (BenchError, DatasetError, ValueError) as e:
        raise click.ClickException(first_line(e)) from None
    click.echo(to_markdown(build_table([(load_run(p), p.name) for p in paths])), nl=False)


@click.command()
@click.argument("results", type=click.Path(path_type=Path))
@option("--out", type=click.Path(path_type=Path),
        help="Leaderboard CSV (default: RESULTS/leaderboard.csv); .md, .png, .svg and .pdf beside it.")
@baseline_option
@verify_option
def leaderboard(results, out, baselines, verify):
    """Merge the runs in RESULTS: CSV, markdown and plot of mAP per bucket, with intervals and paired tests."""
    from benchmark.leaderboard import build_table, to_markdown, write_leaderboard
    from benchmark.results import load_runs
    from benchmark.verify import summary, verify_runs

    if not results.is_dir():
        raise click.ClickException(f"no results folder {results}")
    try:
        records = load_runs(results, warn=lambda line: click.echo(line, err=True))
        if not records:
            raise click.ClickException(f"no run records (*.json) in {results}")
        verdicts = verify_runs(records, results) if verify else None
        table = build_table(records, baselines, verdicts)
    except ValueError as e:
        raise click.ClickException(first_line(e)) from None
    paths = write_leaderboard(table, out or results / "leaderboard.csv")
    click.echo(to_markdown(table), nl=False)
    if verdicts is not None:
        click.echo(summary(verdicts), err=True)
    click.echo(f"wrote {', '.join(map(str, paths))}", err=True)


@click.command()
@click.argument("results", type=click.Path(path_type=Path))
@source_options(None, "The split's CLEVR-DS folder, for the image galleries (or --coco / --dota).")
@option("--out", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True, help="The HTML file.")
@baseline_option
@click.option("--gallery-queries", type=click.IntRange(min=0), default=3, show_default=True, help="Queries shown in the galleries.")
@renamed("--queries", "--gallery-queries", type=click.IntRange(min=0))
@verify_option
def report(results, source, out, baselines, gallery_queries, verify):
    """One self-contained HTML report of RESULTS: leaderboard with intervals, plot, per-class AP, top-5 galleries."""
    from benchmark.report import build_report
    from clevr_ds.dataset import DatasetError
    from infra.atomic import text_writer, write_together

    if not results.is_dir():
        raise click.ClickException(f"no results folder {results}")
    try:
        text = build_report(results, source if source.given else None, baselines, gallery_queries,
                            warn=lambda line: click.echo(line, err=True), verify=verify)
    except (DatasetError, ValueError) as e:
        raise click.ClickException(first_line(e)) from None
    write_together({out: text_writer(text)})
    click.echo(f"wrote {out} ({len(text) // 1024} KiB)", err=True)


COMMANDS = [bench, leaderboard, report]

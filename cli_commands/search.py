"""`clevr-ds index` and `search`, text search: `index` (an image folder to an index file) and `search` (a text query)."""

from __future__ import annotations

from pathlib import Path

import click

from infra.errors import first_line

from .options import (backbone_option, cache_dir_option, checkpoint_option, cover_k_option, device_option,
                      feature_options, option, pretrained_option, quiet_option, seed_option)  # fmt: skip

SEARCH_METHODS = ("detailclip", "cc-max", "clip")


@click.command()
@click.argument("images", type=click.Path(path_type=Path))
@option("--out", type=click.Path(path_type=Path), required=True, help="Index file to write (.npz).")
@click.option("--method", type=click.Choice(SEARCH_METHODS), default="detailclip", show_default=True,
              help="Bench method whose vectors are indexed (cc-max: every Complete Cover patch, searched by max).")
@checkpoint_option(help="DetailCLIP checkpoint (default with the default backbone: the shipped one).")
@backbone_option
@pretrained_option
@seed_option(help="Seed of random backbone weights (default: the checkpoint's, else 0).")
@cover_k_option
@feature_options("feature_cache beside the index")
@quiet_option
def index(images, out, method, checkpoint, backbone, pretrained, seed, cover_k, cache_dir, extract_batch, device, cluster,
          quiet):
    """Index every image under IMAGES (one or several vectors per image); rerun to resume from the feature cache."""
    from benchmark.runner import BenchError, default_weights
    from benchmark.search import build_index

    checkpoint, pretrained = default_weights(checkpoint, backbone, pretrained)
    try:
        built = build_index(images, out, method, checkpoint, backbone, pretrained, seed, cover_k,
                            cache_dir_option(cache_dir, out.parent / "feature_cache"), extract_batch, device, not quiet,
                            cluster)  # fmt: skip
    except (BenchError, ValueError) as e:
        raise click.ClickException(first_line(e)) from None
    n, per_image = built.index.n_images, built.index.vectors_per_image
    click.echo(f"indexed {n} images ({per_image:g} vectors each) -> {out}", err=True)


@click.command()
@click.argument("index_file", type=click.Path(path_type=Path))
@click.argument("query")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Number of hits.")
@click.option("--sheet", type=click.Path(path_type=Path), help="Also write a contact sheet of the hits (PNG, one row).")
@option("--templates", default="plain", show_default=True,
        help="Prompt templates around the query, embeddings averaged (plain: the query alone).")
@device_option(help="torch device for the text tower (default: cuda when available).")
def search(index_file, query, top, sheet, templates, device):
    """Rank the indexed images for a text QUERY: one line per hit with its score and path."""
    from benchmark.search import contact_sheet, load_index, query_vectors, search_index

    try:
        loaded = load_index(index_file)
        scores, order = search_index(loaded.index, query_vectors(loaded.header, [query], templates, device), top)
    except ValueError as e:
        raise click.ClickException(first_line(e)) from None
    paths = [loaded.paths[i] for i in order[0].tolist()]
    for rank, (score, path) in enumerate(zip(scores[0].tolist(), paths), 1):
        click.echo(f"{rank}\t{score:.4f}\t{path}")
    if sheet is not None:
        contact_sheet(paths, scores[0].tolist(), sheet)


COMMANDS = [index, search]

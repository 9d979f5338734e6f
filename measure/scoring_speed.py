"""Speed of the benchmark's scoring and metrics on synthetic data (CPU).

    python -m measure.scoring_speed [--images 100000] [--queries 24] [--dim 512] [--cc-images 5000]
        [--bootstrap-images 5000] [--resamples 1000]

Measures (best of --repeats): single-vector scoring (one matrix product), the metrics of one
[Q, N] label matrix, and on the first --bootstrap-images images a full evaluation (overall + 3
buckets, per class, bootstrap intervals) and the bootstrap of one label matrix (--resamples); then
cc-max scoring over 166 vectors per image (float32, as the methods keep it, and fp16, as the
feature cache stores it).
"""

from __future__ import annotations

import time

import click
import numpy as np
import torch
import torch.nn.functional as F

from benchmark.evaluation import evaluate
from benchmark.index import ImageIndex
from benchmark.metrics import Ranking, query_metrics
from benchmark.uncertainty import bootstrap_map

CC_VECTORS = 166  # Complete Cover at k = 10


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@click.command(help=__doc__.splitlines()[0],
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--images", "n_images", type=int, default=100_000, show_default=True)
@click.option("--queries", "n_queries", type=int, default=24, show_default=True)
@click.option("--dim", type=int, default=512, show_default=True)
@click.option("--cc-images", type=int, default=5_000, show_default=True)
@click.option("--bootstrap-images", type=int, default=5_000, show_default=True)
@click.option("--resamples", type=int, default=1_000, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True)
def main(n_images: int, n_queries: int, dim: int, cc_images: int, bootstrap_images: int, resamples: int, repeats: int) -> None:
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    n, q, d = n_images, n_queries, dim

    queries = F.normalize(torch.randn(q, d, generator=gen), dim=1)
    single = ImageIndex.single(F.normalize(torch.randn(n, d, generator=gen), dim=1))
    scores = single.score(queries).numpy()
    labels = np.where(rng.random((q, n)) < 0.1, 1, 0).astype(np.int8)
    labels[rng.random((q, n)) < 0.05] = -1
    per_bucket = np.stack([np.where((labels == 1) & (rng.random((q, n)) < 0.5), 1, np.minimum(labels, 0)) for _ in range(3)])
    classes = [f"class {i}" for i in range(q)]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"single-vector scoring, {n} images x {q} queries, D={d}: {best_of(repeats, lambda: single.score(queries)):.3f} s")
    print(f"sort once per query (Ranking):                         {best_of(repeats, lambda: Ranking(scores)):.3f} s")
    ranking = Ranking(scores)
    print(f"metrics of one label matrix, given the sort:           {best_of(repeats, lambda: ranking.metrics(labels)):.3f} s")
    print(f"metrics of one label matrix ({q} x {n}), with sort:  {best_of(repeats, lambda: query_metrics(scores, labels)):.3f} s")
    nb = bootstrap_images
    cut = (scores[:, :nb], classes, labels[:, :nb], ["a", "b", "c"], per_bucket[:, :, :nb], 10)
    full = best_of(repeats, lambda: evaluate(*cut, n_resamples=resamples))
    print(f"full evaluation of {nb} images (overall + 3 buckets, per class, {resamples} resamples): {full:.3f} s")
    boot_ranking = Ranking(scores[:, :nb])
    seconds = best_of(repeats, lambda: bootstrap_map(boot_ranking, [labels[:, :nb]], resamples))
    print(f"bootstrap of one label matrix, {resamples} resamples of {q} queries x {nb} images: {seconds:.3f} s")

    m = cc_images * CC_VECTORS
    vectors = F.normalize(torch.randn(m, d, generator=gen), dim=1)
    for dtype in (torch.float32, torch.float16):
        multi = ImageIndex(vectors.to(dtype), torch.full((cc_images,), CC_VECTORS))
        seconds = best_of(repeats, lambda: multi.score(queries))
        print(f"cc-max scoring, {cc_images} images x {CC_VECTORS} {str(dtype)[6:]} vectors x {q} queries: {seconds:.3f} s "
              f"({m / seconds / 1e6:.2f} M vectors/s; {cc_images / seconds:.0f} images/s)")  # fmt: skip


if __name__ == "__main__":
    main()

"""Speed of the benchmark's scoring and metrics on synthetic data (CPU).

    python benchmarks/scoring_speed.py [--images 100000] [--queries 24] [--dim 512] [--cc-images 5000]
        [--bootstrap-images 5000] [--resamples 1000]

Measures (best of --repeats): single-vector scoring (one matrix product), the metrics of one
[Q, N] label matrix, and on the first --bootstrap-images images a full evaluation (overall + 3
buckets, per class, bootstrap intervals) and the bootstrap of one label matrix (--resamples); then
cc-max scoring over 166 vectors per image (float32, as the methods keep it, and fp16, as the
feature cache stores it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.evaluation import evaluate  # noqa: E402
from benchmark.index import ImageIndex  # noqa: E402
from benchmark.metrics import Ranking, query_metrics  # noqa: E402
from benchmark.uncertainty import bootstrap_map  # noqa: E402

CC_VECTORS = 166  # Complete Cover at k = 10


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=24)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--cc-images", type=int, default=5_000)
    parser.add_argument("--bootstrap-images", type=int, default=5_000)
    parser.add_argument("--resamples", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    n, q, d = args.images, args.queries, args.dim

    queries = F.normalize(torch.randn(q, d, generator=gen), dim=1)
    single = ImageIndex.single(F.normalize(torch.randn(n, d, generator=gen), dim=1))
    scores = single.score(queries).numpy()
    labels = np.where(rng.random((q, n)) < 0.1, 1, 0).astype(np.int8)
    labels[rng.random((q, n)) < 0.05] = -1
    per_bucket = np.stack([np.where((labels == 1) & (rng.random((q, n)) < 0.5), 1, np.minimum(labels, 0)) for _ in range(3)])
    classes = [f"class {i}" for i in range(q)]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"single-vector scoring, {n} images x {q} queries, D={d}: {best_of(args.repeats, lambda: single.score(queries)):.3f} s")
    print(f"sort once per query (Ranking):                         {best_of(args.repeats, lambda: Ranking(scores)):.3f} s")
    ranking = Ranking(scores)
    print(f"metrics of one label matrix, given the sort:           {best_of(args.repeats, lambda: ranking.metrics(labels)):.3f} s")
    print(f"metrics of one label matrix ({q} x {n}), with sort:  {best_of(args.repeats, lambda: query_metrics(scores, labels)):.3f} s")
    nb = args.bootstrap_images
    cut = (scores[:, :nb], classes, labels[:, :nb], ["a", "b", "c"], per_bucket[:, :, :nb], 10)
    full = best_of(args.repeats, lambda: evaluate(*cut, n_resamples=args.resamples))
    print(f"full evaluation of {nb} images (overall + 3 buckets, per class, {args.resamples} resamples): {full:.3f} s")
    boot_ranking = Ranking(scores[:, :nb])
    seconds = best_of(args.repeats, lambda: bootstrap_map(boot_ranking, [labels[:, :nb]], args.resamples))
    print(f"bootstrap of one label matrix, {args.resamples} resamples of {q} queries x {nb} images: {seconds:.3f} s")

    m = args.cc_images * CC_VECTORS
    vectors = F.normalize(torch.randn(m, d, generator=gen), dim=1)
    for dtype in (torch.float32, torch.float16):
        multi = ImageIndex(vectors.to(dtype), torch.full((args.cc_images,), CC_VECTORS))
        seconds = best_of(args.repeats, lambda: multi.score(queries))
        print(f"cc-max scoring, {args.cc_images} images x {CC_VECTORS} {str(dtype)[6:]} vectors x {q} queries: {seconds:.3f} s "
              f"({m / seconds / 1e6:.2f} M vectors/s; {args.cc_images / seconds:.0f} images/s)")  # fmt: skip


if __name__ == "__main__":
    main()

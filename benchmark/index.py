"""An image index: one or several L2-normalised vectors per image; an image's score is its best vector's.

A vector's score for a query is `scale * cos(query, vector) - offset` (scale 1 and offsets 0 unless
given: plain cosine similarity; a calibrated teacher, `detailclip.teacher`, sets both).
Single-vector indexes score with one matrix product; multi-vector ones (max over patches) score a
block of vectors at a time and reduce them per image with `scatter_reduce`, so memory stays bounded
and no Python loop runs over images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from detailclip.ragged import owners

BLOCK_VECTORS = 1 << 16


@dataclass(frozen=True)
class ImageIndex:
    vectors: torch.Tensor  # [M, D], rows L2-normalised (float32 for speed; other float dtypes work)
    counts: torch.Tensor  # [N] vectors per image, each >= 1; image i owns the next counts[i] rows
    offsets: torch.Tensor | None = None  # [M] float32, subtracted from each vector's scaled similarity
    scale: float = 1.0

    def __post_init__(self):
        if self.vectors.dim() != 2 or self.counts.dim() != 1:
            raise ValueError("vectors must be [M, D] and counts [N]")
        if int(self.counts.sum()) != self.vectors.shape[0] or bool((self.counts < 1).any()):
            raise ValueError("counts must be >= 1 and sum to the number of vectors")
        if self.offsets is not None and tuple(self.offsets.shape) != (self.vectors.shape[0],):
            raise ValueError("offsets must be [M], one per vector")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, not {self.scale}")

    @classmethod
    def single(cls, vectors: torch.Tensor) -> "ImageIndex":
        return cls(vectors, torch.ones(vectors.shape[0], dtype=torch.long))

    @property
    def n_images(self) -> int:
        return self.counts.shape[0]

    @property
    def vectors_per_image(self) -> float:
        return self.vectors.shape[0] / max(self.n_images, 1)

    def _vector_scores(self, queries: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        sims = queries @ self.vectors[start:stop].float().T
        if self.scale != 1.0:
            sims = sims * self.scale
        return sims if self.offsets is None else sims - self.offsets[start:stop].float()

    def score(self, queries: torch.Tensor, block: int = BLOCK_VECTORS) -> torch.Tensor:
        """Scores [Q, N] of L2-normalised queries [Q, D] (cosine similarities unless scaled or offset), in float32."""
        queries = queries.float()
        if self.vectors.shape[0] == self.n_images:
            return self._vector_scores(queries, 0, self.n_images)
        owner = owners(self.counts)
        out = torch.full((queries.shape[0], self.n_images), float("-inf"))
        for start in range(0, self.vectors.shape[0], block):
            sims = self._vector_scores(queries, start, start + block)
            idx = owner[start : start + block].expand(queries.shape[0], -1)
            out.scatter_reduce_(1, idx, sims, reduce="amax")
        return out

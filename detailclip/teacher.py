"""A calibrated teacher: each window's similarity to a query, measured against the vocabulary it competes with.

The plain teacher scores an image by its best window's cosine similarity to the query (`cc-max`). Windows
that resemble every class somewhat (coarse windows over many objects, busy regions) then raise the maxima
of images that hold no instance of the query. Calibration scores a window by the log-probability of the
query among the classes of a vocabulary (a softmax of temperature-scaled similarities), so a window that
matches all classes alike gains nothing, and lowers coarser levels by a fixed amount per level:

    score(q, w) = tau * cos(q, w) - logsumexp_c(tau * cos(c, w)) - penalty * (finest level of w's image - level of w)

The subtracted part depends on the window only, so it is one offset per window: an image's score stays
the max over its windows of a scaled dot product minus an offset (`benchmark.index.ImageIndex`), for any
query, in the vocabulary or not.
"""

from __future__ import annotations

import torch

from .ragged import owners

BLOCK_WINDOWS = 1 << 15


def window_offsets(vectors: torch.Tensor, counts: torch.Tensor, levels: torch.Tensor, vocabulary: torch.Tensor,
                   temperature: float, level_penalty: float) -> torch.Tensor:
    """Per-window offsets [M] (float32) of the calibrated score, for windows `vectors` [M, D] (L2-normalised)
    of images owning `counts` [N] consecutive rows each, at Complete Cover `levels` [M] (0: the whole
    image), against the class `vocabulary` [C, D] (L2-normalised, C >= 1)."""
    if vocabulary.dim() != 2 or vocabulary.shape[0] < 1:
        raise ValueError("the calibration needs a vocabulary of at least one class vector")
    if temperature <= 0 or level_penalty < 0:
        raise ValueError(f"temperature must be > 0 and level_penalty >= 0, not {temperature} and {level_penalty}")
    vocabulary = vocabulary.float()
    normaliser = torch.cat([
        torch.logsumexp(temperature * (vectors[start : start + BLOCK_WINDOWS].float() @ vocabulary.T), dim=1)
        for start in range(0, vectors.shape[0], BLOCK_WINDOWS)
    ]) if vectors.shape[0] else vectors.new_zeros(0, dtype=torch.float32)  # fmt: skip
    owner = owners(counts)
    finest = torch.zeros(counts.shape[0], dtype=torch.long, device=counts.device)
    finest.scatter_reduce_(0, owner, levels.long(), reduce="amax")
    return normaliser + level_penalty * (finest[owner] - levels.long()).float()


def calibrated_max(features: torch.Tensor, padding: torch.Tensor | None, levels: torch.Tensor, queries: torch.Tensor,
                   vocabulary: torch.Tensor, temperature: float, level_penalty: float) -> torch.Tensor:
    """The calibrated teacher's scores over temperature [B, Q] of a padded batch: patch `features` [B, P, D],
    `padding` [B, P] (True: no patch; None: all valid), Complete Cover `levels` [B, P], `queries` [Q, D]."""
    valid = torch.ones(levels.shape, dtype=torch.bool, device=levels.device) if padding is None else ~padding
    offsets = torch.full(valid.shape, float("inf"), device=features.device)
    offsets[valid] = window_offsets(features[valid], valid.sum(1), levels[valid], vocabulary.to(features.device),
                                    temperature, level_penalty)  # fmt: skip
    sims = torch.einsum("bpd,qd->bqp", features.float(), queries.float()) - offsets[:, None, :] / temperature
    return sims.amax(dim=-1)

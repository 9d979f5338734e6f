"""Distillation losses: the fused vector must reproduce the best patch's similarity to queries.

For an image i and a query q (unit vectors): target s*(q, i) = max over i's patches of cos(q, patch)
(the teacher; optionally over the patches of some Complete Cover levels only), prediction
s(q, i) = cos(q, fused_i); loss = scale * MSE (or L1) over all (q, i).
- Text matching: the queries are fixed, image-agnostic prompt embeddings (every class in every
  template).
- Patch matching: the queries are patch features of the batch ("all" valid patches, or "sample":
  round(sqrt(n)) random patches per level and image), a patch's similarity with itself excluded.
- Text ranking (optional): per text query, the batch's images as a softmax of similarity /
  temperature, the fused against the teacher's (KL divergence): weighs the top of each retrieval
  ranking, which mAP rewards, where the matching losses weigh every (query, image) pair alike.
- Listwise ranking (optional): per text query, the Plackett-Luce likelihood of the teacher's order
  of the batch's images over its first `depth` places: each place's image must outrank every image
  the teacher puts below it (-log softmax over those of similarity / temperature). Every place
  counts alike, where the softmax ranking term weighs mostly the first few, so the lower places
  (a small object's image above the images without the object) are trained too.
- Calibration (optional): text matching compares the targets with a learned per-query affine map
  of the fused similarities (QueryCalibration, identity at the start) instead of the similarities
  themselves. Retrieval ranks the images of a query by similarity, which such a map leaves alone;
  a unit vector often cannot reach the absolute similarities, whose spread across images exceeds
  what its norm allows.
- Text correlation (optional): per text query, 1 - Pearson correlation across the batch's images
  between fused and teacher similarities. A query's ranking, all that retrieval scores, is blind to
  an affine map of its similarities; this term is blind to it too, so one unit vector can meet it
  exactly for up to D queries in general position (it cannot, in general, reproduce the absolute
  similarities that the matching and ranking terms ask for).
- Detail weighting (optional, label-free): the text matching term of a (query, image) pair weighs
  1 + detail_weight * max(0, z), z the pair's detail gain (teacher target minus the whole image's
  similarity) standardised per query over the training images: pairs whose evidence only a small
  window sees, the small objects that a whole-image vector loses, count more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..fusion import NEG
from ..recipe import LossConfig


def similarity_loss(prediction: torch.Tensor, target: torch.Tensor, kind: str = "mse", scale: float = 100.0,
                    weight: torch.Tensor | None = None) -> torch.Tensor:
    """scale * mean (squared or absolute) error; with `weight` (>= 0, same shape) the weighted mean."""
    error = prediction.float() - target.float()
    error = error.square() if kind == "mse" else error.abs()
    if weight is None:
        return scale * error.mean()
    return scale * (error * weight).sum() / weight.sum().clamp(min=1)


class QueryCalibration(nn.Module):
    """A per-query affine map of similarities [B, Q] -> scale_q * s + shift_q (scale = exp of a
    learned log, so it stays positive and the rankings stay as they are); the identity at the start."""

    def __init__(self, queries: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(queries))
        self.shift = nn.Parameter(torch.zeros(queries))

    def forward(self, similarities: torch.Tensor) -> torch.Tensor:
        return similarities * self.log_scale.exp() + self.shift


def text_matching_loss(similarities: torch.Tensor, targets: torch.Tensor, kind: str = "mse", scale: float = 100.0,
                       weight: torch.Tensor | None = None, calibration: QueryCalibration | None = None) -> torch.Tensor:
    """similarities [B, Q] = cos(query, fused) (fused @ queries.T); targets [B, Q]
    (max_patch_similarity, precomputable); weight [B, Q] per pair (None: all alike); `calibration`
    maps the similarities first."""
    if calibration is not None:
        similarities = calibration(similarities)
    return similarity_loss(similarities, targets, kind, scale, weight)


def detail_weights(targets: torch.Tensor, whole: torch.Tensor, detail_weight: float) -> torch.Tensor:
    """Per-pair text matching weights [N, Q] = 1 + detail_weight * max(0, z): z is the detail gain
    (targets - whole, both [N, Q]) standardised per query (column) over the N images."""
    gain = targets.float() - whole.float()
    spread = gain.std(dim=0) if len(gain) > 1 else torch.zeros_like(gain[0])  # one image: no spread, z = 0
    z = (gain - gain.mean(dim=0)) / spread.clamp(min=1e-6)
    return 1.0 + detail_weight * z.clamp(min=0)


def text_ranking_loss(similarities: torch.Tensor, targets: torch.Tensor, temperature: float = 0.02) -> torch.Tensor:
    """KL(teacher || fused) between each query's softmax over the batch's images (similarities and
    targets [B, Q]), mean over queries."""
    student = F.log_softmax(similarities.float() / temperature, dim=0)
    teacher = F.log_softmax(targets.float() / temperature, dim=0)
    return F.kl_div(student, teacher, log_target=True, reduction="sum") / targets.shape[1]


def text_listwise_loss(similarities: torch.Tensor, targets: torch.Tensor, temperature: float = 0.02,
                       depth: int = 8) -> torch.Tensor:
    """Mean over queries and the teacher's first `depth` places (of the batch's images, ordered by
    targets [B, Q]) of -log softmax, over that place's image and all below it, of the similarities
    [B, Q] / temperature: the top-`depth` Plackett-Luce negative log-likelihood of the teacher's order."""
    order = targets.float().argsort(dim=0, descending=True)
    ranked = (similarities.float() / temperature).gather(0, order)
    places = min(depth, len(ranked))
    below = ranked.flip(0).logcumsumexp(dim=0).flip(0)  # place k: logsumexp over places k, k+1, ...
    return (below[:places] - ranked[:places]).mean()


def text_correlation_loss(similarities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over queries of 1 - Pearson correlation, across the batch's images, between the
    similarities and the targets [B, Q]."""
    centred = [x - x.mean(dim=0) for x in (similarities.float(), targets.float())]
    return (1 - F.cosine_similarity(*centred, dim=0, eps=1e-8)).mean()


def patch_matching_loss(fused: torch.Tensor, patch_features: torch.Tensor, padding_mask: torch.Tensor | None = None,
                        levels: torch.Tensor | None = None, mode: str = "all", kind: str = "mse",
                        scale: float = 100.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Patch features of the batch as queries; a patch never matches itself."""
    batch, patches, _ = patch_features.shape
    valid = torch.ones(batch, patches, dtype=torch.bool, device=fused.device) if padding_mask is None else ~padding_mask
    if mode == "sample":
        if levels is None:
            raise ValueError("patch mode 'sample' needs the patch levels")
        valid = valid & sample_per_level(levels, valid, generator)
    query_image, query_patch = torch.nonzero(valid, as_tuple=True)
    queries = patch_features[query_image, query_patch].float()  # [Q, D]
    sims = torch.einsum("bpd,qd->bqp", patch_features.float(), queries)  # [B, Q, P]
    own = torch.zeros_like(sims, dtype=torch.bool)
    own[query_image, torch.arange(len(queries), device=sims.device), query_patch] = True
    sims = sims.masked_fill(own, NEG)
    if padding_mask is not None:
        sims = sims.masked_fill(padding_mask[:, None, :], NEG)
    targets = sims.amax(dim=-1)
    defined = (targets > NEG / 2).float()  # an image of one patch has nothing left to match
    return similarity_loss(fused.float() @ queries.T, targets, kind, scale, weight=defined)


def sample_per_level(levels: torch.Tensor, valid: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, P] mask choosing round(sqrt(n)) random valid patches of each level of each image."""
    device = generator.device if generator is not None else levels.device
    scores = torch.rand(levels.shape, generator=generator, device=device).to(levels.device)
    chosen = torch.zeros_like(valid)
    for level in torch.unique(levels[valid]).tolist():
        in_level = valid & (levels == level)
        counts = in_level.sum(dim=1, keepdim=True)
        wanted = torch.sqrt(counts.float()).round().clamp(min=1).long()
        ranks = scores.masked_fill(~in_level, 2.0).argsort(dim=1).argsort(dim=1)
        chosen |= in_level & (ranks < wanted)
    return chosen


def distillation_loss(fused: torch.Tensor, patch_features: torch.Tensor, padding_mask: torch.Tensor | None,
                      levels: torch.Tensor | None, text_queries: torch.Tensor | None,
                      text_targets: torch.Tensor | None, config: LossConfig,
                      generator: torch.Generator | None = None,
                      text_pair_weights: torch.Tensor | None = None,
                      calibration: QueryCalibration | None = None) -> dict[str, torch.Tensor]:
    """The weighted sum of the text matching, ranking, listwise ranking and correlation and the patch
    matching losses, with its parts; `text_pair_weights` [B, Q] weigh the text matching pairs
    (detail_weights); `calibration` (with `config.calibrate`) maps the fused similarities of the text
    matching term."""
    parts = {}
    if text_queries is not None:
        similarities = fused.float() @ text_queries.float().T
        if config.text_weight:
            parts["text"] = text_matching_loss(similarities, text_targets, config.kind, config.scale,
                                               text_pair_weights, calibration if config.calibrate else None)
        if config.rank_weight:
            parts["rank"] = text_ranking_loss(similarities, text_targets, config.rank_temperature)
        if config.list_weight:
            parts["list"] = text_listwise_loss(similarities, text_targets, config.rank_temperature, config.list_depth)
        if config.corr_weight:
            parts["corr"] = text_correlation_loss(similarities, text_targets)
    if config.patch_weight:
        parts["patch"] = patch_matching_loss(fused, patch_features, padding_mask, levels, config.patch_mode,
                                             config.kind, config.scale, generator)
    weights = {"text": config.text_weight, "rank": config.rank_weight, "list": config.list_weight,
               "corr": config.corr_weight, "patch": config.patch_weight}
    parts["loss"] = sum(weights[name] * value for name, value in parts.items())
    return parts


def fidelity(prediction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Fused against teacher similarities [images, queries]: Pearson correlation and mean absolute
    error over all pairs, and `rank_corr`, each query's Spearman correlation across the images,
    averaged over the queries (how closely each retrieval ranking follows the teacher's)."""
    p, t = prediction.detach().float(), target.detach().float()
    corr = F.cosine_similarity(p.flatten() - p.mean(), t.flatten() - t.mean(), dim=0)
    ranks = [x.reshape(x.shape[0], -1).argsort(dim=0).argsort(dim=0).float() for x in (p, t)]
    rank_corr = F.cosine_similarity(*(r - r.mean(dim=0) for r in ranks), dim=0).mean()
    return {"corr": float(corr), "mae": float((p - t).abs().mean()), "rank_corr": float(rank_corr)}

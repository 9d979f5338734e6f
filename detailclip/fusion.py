"""Fusion models: patch features [B, P, D] (patch 0 = whole image) to one vector per image.

- FusionTransformer: a standard encoder-decoder transformer without positional encoding (the
  patches are a set); the encoder runs over all patches, the decoder's single query is the
  whole-image feature. Width = the backbone's embedding width, MLP = 4 x width, GELU. With
  `level_embedding` a learned vector per Complete Cover level (zero at the start, so training
  starts from the level-blind model) is added to each patch feature: the set stays unordered
  but is no longer scale-blind. With `max_directions` M > 0 a max branch adds W h to the decoder's
  output, h_j = max over the valid patches of cos(u_j, patch) for M learned directions u_j and W
  [D, M] zero at the start (so training starts from the model without it): the teacher's own
  operation (max over patches of a query's similarity), which attention pools only softly and with
  few heads.
- MeanFusion: the parameter-free mean of the patch features.
Both return L2-normalised [B, D] vectors in CLIP space.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .recipe import FUSION_SIZES

FUSION_NAMES = (*FUSION_SIZES, "mean")
MAX_LEVELS = 16  # level embeddings; deeper levels (none at k <= 30) share the last one
NEG = -1e4  # below any cosine similarity


def max_patch_similarity(patch_features: torch.Tensor, queries: torch.Tensor,
                         padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Targets [B, Q]: max over each image's valid patches of cos(query, patch)."""
    sims = torch.einsum("bpd,qd->bqp", patch_features.float(), queries.float())
    if padding_mask is not None:
        sims = sims.masked_fill(padding_mask[:, None, :], NEG)
    return sims.amax(dim=-1)


class FusionTransformer(nn.Module):
    def __init__(self, dim: int, heads: int, encoder_layers: int, decoder_layers: int, mlp_ratio: float = 4.0,
                 dropout: float = 0.1, norm_first: bool = False, level_embedding: bool = False,
                 max_directions: int = 0):
        super().__init__()
        layer = dict(d_model=dim, nhead=heads, dim_feedforward=int(dim * mlp_ratio), dropout=dropout,
                     activation="gelu", batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer), encoder_layers,
                                             norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer), decoder_layers, norm=nn.LayerNorm(dim))
        self.levels = nn.Embedding(MAX_LEVELS, dim) if level_embedding else None
        if self.levels is not None:
            nn.init.zeros_(self.levels.weight)
        self.directions = nn.Parameter(torch.randn(max_directions, dim)) if max_directions else None
        self.max_mix = nn.Linear(max_directions, dim, bias=False) if max_directions else None
        if self.max_mix is not None:
            nn.init.zeros_(self.max_mix.weight)

    def forward(self, patch_features: torch.Tensor, padding_mask: torch.Tensor | None = None,
                levels: torch.Tensor | None = None) -> torch.Tensor:
        """patch_features [B, P, D]; padding_mask [B, P] True where a slot is padding; levels [B, P]
        the patches' Complete Cover levels (needed with level embeddings; padding slots any value)."""
        inputs = patch_features
        if self.levels is not None:
            if levels is None:
                raise ValueError("this fusion model has level embeddings: pass the patch levels")
            inputs = inputs + self.levels(levels.clamp(0, MAX_LEVELS - 1)).to(inputs.dtype)
        with _regular_attention_path():
            memory = self.encoder(inputs, src_key_padding_mask=padding_mask)
            fused = self.decoder(inputs[:, :1], memory, memory_key_padding_mask=padding_mask)[:, 0].float()
        if self.directions is not None:
            fused = fused + self.max_mix(self._max_similarity(patch_features, padding_mask))
        return F.normalize(fused, dim=-1)

    def _max_similarity(self, patch_features: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        """h [B, M]: per direction, the max over the valid patches of cos(direction, patch)."""
        return max_patch_similarity(F.normalize(patch_features.float(), dim=-1), F.normalize(self.directions, dim=-1),
                                    padding_mask)


@contextlib.contextmanager
def _regular_attention_path():
    """Keep torch's transformer layers off their fused inference path, which holds every head's P x P
    attention scores at once (`encode` of an 8960 px `cc-fine` cover, 24,686 windows: 5.57 GiB peak against
    2.65 GiB, docs/detailclip.md); the regular path's scaled_dot_product_attention does not. Same outputs."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


class MeanFusion(nn.Module):
    def forward(self, patch_features: torch.Tensor, padding_mask: torch.Tensor | None = None,
                levels: torch.Tensor | None = None) -> torch.Tensor:
        if padding_mask is None:
            return F.normalize(patch_features.float().mean(dim=1), dim=-1)
        keep = (~padding_mask).unsqueeze(-1).to(patch_features.dtype)
        summed = (patch_features * keep).sum(dim=1)
        return F.normalize(summed.float() / keep.sum(dim=1).clamp(min=1), dim=-1)


def fusion_config(size: str, dim: int, **overrides) -> dict:
    """The full, JSON-able configuration of a fusion model (what a checkpoint stores)."""
    if size not in FUSION_NAMES:
        raise ValueError(f"unknown fusion size {size!r} (known: {', '.join(FUSION_NAMES)})")
    if size == "mean":
        return {"size": "mean", "dim": int(dim)}
    config = {"size": size, "dim": int(dim), **FUSION_SIZES[size], "mlp_ratio": 4.0, "dropout": 0.1,
              "norm_first": False, "level_embedding": False, "max_directions": 0}
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"unknown fusion options {sorted(unknown)}")
    config.update(overrides)
    if config["dim"] % config["heads"]:
        raise ValueError(f"width {dim} is not divisible by {config['heads']} heads")
    return config


def build_fusion(size: str, dim: int, **overrides) -> nn.Module:
    """A fusion model by size name ("tiny", "small", "base", "mean") for D = dim features;
    overrides: heads, encoder_layers, decoder_layers, mlp_ratio, dropout, norm_first, level_embedding,
    max_directions."""
    config = fusion_config(size, dim, **overrides)
    return build_fusion_from_config(config)


def build_fusion_from_config(config: dict) -> nn.Module:
    if config["size"] == "mean":
        model = MeanFusion()
    else:
        options = {k: v for k, v in config.items() if k != "size"}
        model = FusionTransformer(**options)
    model.config = dict(config)
    return model

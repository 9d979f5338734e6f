"""Fusion training settings as data (no torch import): the distillation loss, the optimisation
schedule and the whole recipe (backbone, Complete Cover, fusion model). The defaults are the recipe
of the shipped CLEVR-DS checkpoint (the auto cover with magnified windows, `cc-fine`, and the
calibrated teacher over them), so `train --data DIR` without other flags reproduces it
(scripts/make_reference_fusion.sh; the aerial fusion was trained before: the plain cover at k 10 and
the plain max, flags the script passes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .cover import begins_with, parse_cover_k

PATCH_MODES = ("all", "sample")
LOSS_KINDS = ("mse", "l1")
SCHEMES = ("cc", "cc-fine", "grid")  # the patch schemes a fusion reads
MAX_K = 30  # Complete Cover depth / grid side
TEACHER_LEVEL_PENALTY = 0.025  # the shipped recipe's (chosen on a validation split: docs/experiments.md)
QUERY_SETS = ("prompts", "classes", "both")  # text queries: every (class, template) prompt, the template-averaged classes, or both
FUSION_SIZES: dict[str, dict] = {  # the fusion transformer's sizes (detailclip.fusion)
    "tiny": {"heads": 2, "encoder_layers": 3, "decoder_layers": 3},
    "small": {"heads": 4, "encoder_layers": 6, "decoder_layers": 6},
    "base": {"heads": 8, "encoder_layers": 12, "decoder_layers": 12},
}


@dataclass(frozen=True)
class LossConfig:
    """Weights and settings of the distillation terms (detailclip.training.losses)."""

    text_weight: float = 0.25
    patch_weight: float = 0.0
    kind: str = "mse"
    scale: float = 100.0
    patch_mode: str = "sample"
    rank_weight: float = 3.0
    rank_temperature: float = 0.02
    list_weight: float = 6.0
    list_depth: int = 8  # the listwise term's places per query (losses.text_listwise_loss)
    corr_weight: float = 0.0
    calibrate: bool = False  # text matching through a learned per-query affine map (losses.QueryCalibration)
    detail_weight: float = 4.0
    teacher_levels: tuple[int, ...] | None = None  # Complete Cover levels the text targets max over (None: all)
    teacher_temperature: float = 2.0  # > 0: the calibrated teacher (detailclip.teacher) at this temperature; 0: the max
    teacher_level_penalty: float | None = None  # the calibrated teacher's, per level below an image's finest (None:
    # TEACHER_LEVEL_PENALTY with a temperature, 0 for the plain max)
    teacher_scheme: str | None = None  # the windows the teacher scores (None: the student's; else a scheme whose
    # windows begin with the student's, detailclip.cover.begins_with: cc-fine for a cc student)

    def __post_init__(self):
        if self.kind not in LOSS_KINDS:
            raise ValueError(f"unknown loss kind {self.kind!r} (known: {', '.join(LOSS_KINDS)})")
        if self.patch_mode not in PATCH_MODES:
            raise ValueError(f"unknown patch mode {self.patch_mode!r} (known: {', '.join(PATCH_MODES)})")
        if self.list_depth < 1:
            raise ValueError(f"the listwise depth must be at least 1, not {self.list_depth}")
        if self.teacher_level_penalty is None:
            penalty = TEACHER_LEVEL_PENALTY if self.teacher_temperature else 0.0
            object.__setattr__(self, "teacher_level_penalty", penalty)
        if self.teacher_temperature < 0 or self.teacher_level_penalty < 0:
            raise ValueError("the teacher's temperature and level penalty must be >= 0")
        if self.teacher_level_penalty and not self.teacher_temperature:
            raise ValueError("a teacher level penalty needs a teacher temperature (the calibrated teacher)")
        if self.teacher_levels is not None:
            levels = tuple(self.teacher_levels)
            if not levels or any(not isinstance(v, int) or v < 0 for v in levels):
                raise ValueError(f"teacher levels must be levels 0, 1, ... (0: the whole image), not {levels}")
            object.__setattr__(self, "teacher_levels", tuple(sorted(set(levels))))


@dataclass
class TrainConfig:
    """Optimisation: AdamW, linear warm-up then cosine decay, early stopping on the validation loss."""

    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of all steps
    patience: int = 0  # epochs without validation improvement before stopping (0: never stop early)
    checkpoint_every: int = 1  # epochs between resumable state files
    seed: int = 0  # also the random backbone's seed and the held-out fraction's
    loss: LossConfig = field(default_factory=LossConfig)


@dataclass(frozen=True)
class FusionRecipe:
    """What a fusion checkpoint is trained from, beside its data: the frozen backbone (None: the
    shipped reference backbone), the patch scheme, the prompt templates and the fusion model."""

    backbone: str | None = None
    pretrained: str | None = None
    image_size: int | None = None  # force the backbone's input size
    templates: str = "openai80"
    queries: str = "prompts"
    scheme: str = "cc-fine"
    k: int | str = "auto"  # or an int: "auto" is per image, from its size (detailclip.cover.auto_k)
    size: str = "tiny"
    dropout: float = 0.1
    pre_norm: bool = False
    level_embedding: bool = False
    max_directions: int = 0  # the fusion's max branch (detailclip.fusion; 0: none)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if self.queries not in QUERY_SETS:
            raise ValueError(f"unknown query set {self.queries!r} (known: {', '.join(QUERY_SETS)})")
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown patch scheme {self.scheme!r} (known: {', '.join(SCHEMES)})")
        teacher = self.train.loss.teacher_scheme
        if teacher is not None and not begins_with(teacher, self.scheme):  # the student's own, or one that extends it
            raise ValueError(f"the teacher's windows must begin with the student's: scheme {self.scheme!r} "
                             f"cannot have teacher scheme {teacher!r}")
        object.__setattr__(self, "k", parse_cover_k(self.k, MAX_K))
        if self.size not in FUSION_SIZES:
            raise ValueError(f"unknown fusion size {self.size!r} (known: {', '.join(FUSION_SIZES)})")

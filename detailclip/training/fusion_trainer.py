"""Training a fusion model by distillation from the Complete Cover max-similarity teacher (or its calibrated
version, detailclip.teacher).

AdamW, linear warm-up then cosine decay, bf16/fp16 autocast on CUDA, seeded shuffling and patch
sampling, a resumable state file written every `checkpoint_every` epochs, early stopping on the
validation loss (the best epoch's weights are kept), a CSV log with one row per epoch. Identical
runs write identical checkpoints and state files: the seconds each epoch took go to the CSV log only.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from infra.lock import output_lock

from ..backbones import DEFAULT_BACKBONE, DEFAULT_PRETRAINED, autocast, average_prompts, load_backbone
from ..checkpoint import save_checkpoint, tensor_shapes, wrong_fields
from ..cover import AUTO_K, auto_k_record
from ..data import data_hash, load_training_data
from ..encode import collate
from ..features import PatchFeatures, extract_features, leading_windows
from ..images import declared_size
from ..fusion import build_fusion, max_patch_similarity
from ..recipe import FusionRecipe, LossConfig, TrainConfig
from ..teacher import calibrated_max
from .losses import QueryCalibration, detail_weights, distillation_loss, fidelity
from .state import logged_column, lr_factor, resume_from, save_state, write_log

STATE_FORMAT = "detailclip-train-state/1"
STATE_TYPES = {"epoch": int, "best": dict, "stale_epochs": int, "log": list}  # checked before a state is loaded
BEST_TYPES = {"val_loss": (float, int), "epoch": int, "state": (dict, type(None))}


@dataclass
class FeatureBank:
    """All patch features of a set, padded and stacked (fp16 [N, P, D], mask [N, P] or None, levels)."""

    features: torch.Tensor
    padding: torch.Tensor | None
    levels: torch.Tensor

    @classmethod
    def from_items(cls, items: list[PatchFeatures], device: torch.device) -> "FeatureBank":
        features, padding, levels = collate(items, device, dtype=torch.float16)
        return cls(features, padding, levels)

    def __len__(self) -> int:
        return self.features.shape[0]

    def batch(self, ids: torch.Tensor):
        padding = self.padding[ids] if self.padding is not None else None
        return self.features[ids].float(), padding, self.levels[ids]


def teacher_targets(bank: FeatureBank, queries: torch.Tensor, levels: tuple[int, ...] | None = None,
                    calibration: tuple[torch.Tensor, float, float] | None = None, chunk: int = 64) -> torch.Tensor:
    """Text targets [N, Q]: max over each image's patches (those of `levels` only, when given) of
    cos(query, patch); ValueError when an image lacks one of `levels`. With a `calibration` (class
    vocabulary [C, D], temperature, level penalty) the calibrated teacher's scores (detailclip.teacher),
    mapped per query onto the plain max's mean and spread over the set: the same rankings, on the scale
    that the matching and ranking terms expect."""
    plain, calibrated = [], []
    for start in range(0, len(bank), chunk):
        ids = torch.arange(start, min(start + chunk, len(bank)), device=bank.features.device)
        features, padding, patch_levels = bank.batch(ids)
        if levels is not None:
            patch_levels = patch_levels if padding is None else patch_levels.masked_fill(padding, -1)
            for level in levels:
                lacking = ~(patch_levels == level).any(dim=1)
                if lacking.any():
                    present = patch_levels[lacking][0]
                    raise ValueError(f"an image has no patch of teacher level {level} "
                                     f"(its levels: {present[present >= 0].unique().tolist()})")
            padding = ~torch.isin(patch_levels, torch.tensor(levels, device=patch_levels.device))
        plain.append(max_patch_similarity(features, queries, padding))
        if calibration is not None:
            calibrated.append(calibrated_max(features, padding, patch_levels, queries, *calibration))
    plain = torch.cat(plain)
    return plain if calibration is None else on_scale_of(torch.cat(calibrated), plain)


def teacher_calibration(loss: LossConfig, vocabulary: torch.Tensor | None) -> tuple[torch.Tensor, float, float] | None:
    """teacher_targets' `calibration` for a loss: None for the plain max (temperature 0), else (the class
    `vocabulary` [C, D], temperature, level penalty); ValueError when the calibrated teacher has no vocabulary."""
    if not loss.teacher_temperature:
        return None
    if vocabulary is None:
        raise ValueError("the calibrated teacher needs the class vocabulary (or a teacher temperature of 0: the max)")
    return vocabulary, loss.teacher_temperature, loss.teacher_level_penalty


def on_scale_of(scores: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """`scores` [N, Q] mapped per query (column) by an increasing affine map onto the mean and standard
    deviation of `reference` [N, Q]."""
    standardised = (scores - scores.mean(dim=0, keepdim=True)) / scores.std(dim=0, keepdim=True).clamp_min(1e-12)
    return standardised * reference.std(dim=0, keepdim=True) + reference.mean(dim=0, keepdim=True)


def text_pair_weights(bank: FeatureBank, queries: torch.Tensor, targets: torch.Tensor,
                      config: LossConfig) -> torch.Tensor | None:
    """The text matching weights [N, Q] of a set (detail_weights against its whole-image patches),
    or None without detail weighting."""
    if not config.detail_weight:
        return None
    whole = bank.features[:, 0].float() @ queries.T
    return detail_weights(targets, whole, config.detail_weight)


class Trainer:
    def __init__(self, model: nn.Module, train_items: list[PatchFeatures], val_items: list[PatchFeatures] | None,
                 text_queries: torch.Tensor, config: TrainConfig, device: torch.device, run_config: dict,
                 vocabulary: torch.Tensor | None = None,
                 teacher_items: tuple[list[PatchFeatures], list[PatchFeatures] | None] | None = None):
        """`vocabulary` [C, D]: the class embeddings the calibrated teacher scores against (needed when
        config.loss.teacher_temperature > 0). `teacher_items` (train, val): the windows the teacher scores
        where they are more than the student reads (a scheme whose windows begin with the student's)."""
        self.run_config = {**run_config, "train": asdict(config)}
        self.model, self.config, self.device = model.to(device), config, device
        self.queries = text_queries.to(device).float()
        loss = config.loss
        calibration = teacher_calibration(loss, vocabulary)
        teacher_train, teacher_val = teacher_items or (None, None)

        def targets(bank: FeatureBank, teacher: list[PatchFeatures] | None) -> torch.Tensor:
            scored = bank if teacher is None else FeatureBank.from_items(teacher, device)
            return teacher_targets(scored, self.queries, loss.teacher_levels, calibration)

        self.train = FeatureBank.from_items(train_items, device)
        self.train_targets = targets(self.train, teacher_train)
        self.train_weights = text_pair_weights(self.train, self.queries, self.train_targets, config.loss)
        self.val = FeatureBank.from_items(val_items, device) if val_items else None
        self.val_targets = targets(self.val, teacher_val) if self.val is not None else None
        self.val_weights = (text_pair_weights(self.val, self.queries, self.val_targets, config.loss)
                            if self.val is not None else None)
        self.steps_per_epoch = math.ceil(len(self.train) / config.batch_size)
        total = config.epochs * self.steps_per_epoch
        warmup_steps = max(1, round(config.warmup * total))
        self.calibration = QueryCalibration(len(self.queries)).to(device) if config.loss.calibrate else None
        groups = [{"params": model.parameters()}]
        if self.calibration is not None:  # a calibration decays toward nothing: it is the loss's, not the model's
            groups.append({"params": self.calibration.parameters(), "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, total, warmup_steps))
        fp16 = device.type == "cuda" and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.epoch = 0
        self.best = {"val_loss": math.inf, "epoch": 0, "state": None}
        self.stale_epochs = 0
        self.log: list[dict] = []
        self.seconds: list[float | None] = []  # per epoch: in the CSV log, not the state (see logged_column)

    def _loss(self, ids: torch.Tensor):
        features, padding, levels = self.train.batch(ids)
        with autocast(self.device):
            fused = self.model(features, padding, levels)
        weights = self.train_weights[ids] if self.train_weights is not None else None
        return distillation_loss(fused.float(), features, padding, levels, self.queries, self.train_targets[ids],
                                 self.config.loss, self.generator, weights, self.calibration)

    def train_epoch(self, progress: bool) -> dict:
        self.model.train()
        order = torch.randperm(len(self.train), generator=self.generator).to(self.device)
        sums: dict[str, float] = {}
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
                   disable=not progress, leave=False)
        for step in bar:
            ids = order[step * self.config.batch_size:(step + 1) * self.config.batch_size]
            parts = self._loss(ids)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(parts["loss"]).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + value.item()
            bar.set_postfix(loss=f"{parts['loss'].item():.4f}")
        return {f"train_{k}": v / self.steps_per_epoch for k, v in sums.items()}

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Validation loss (fixed patch sample) and fidelity of fused vs CC-max text similarities."""
        if self.val is None:
            return {}
        self.model.eval()
        generator = torch.Generator().manual_seed(self.config.seed + 1)
        sums, fused_all = {}, []
        batches = range(0, len(self.val), self.config.batch_size)
        for start in batches:
            ids = torch.arange(start, min(start + self.config.batch_size, len(self.val)), device=self.device)
            features, padding, levels = self.val.batch(ids)
            with autocast(self.device):
                fused = self.model(features, padding, levels).float()
            fused_all.append(fused)
            weights = self.val_weights[ids] if self.val_weights is not None else None
            parts = distillation_loss(fused, features, padding, levels, self.queries, self.val_targets[ids],
                                      self.config.loss, generator, weights, self.calibration)
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(ids)
        metrics = {f"val_{k}": v / len(self.val) for k, v in sums.items()}
        quality = fidelity(torch.cat(fused_all) @ self.queries.T, self.val_targets)
        return {**metrics, **{f"val_{k}": v for k, v in quality.items()}}

    def state(self) -> dict:
        return {"format": STATE_FORMAT, "epoch": self.epoch, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "generator": self.generator.get_state(), "best": self.best,
                "stale_epochs": self.stale_epochs, "log": self.log, "run_config": self.run_config, "torch_rng": torch.get_rng_state(),
                "calibration": self.calibration.state_dict() if self.calibration is not None else None}

    def load_state(self, state: dict) -> None:
        """Continue from `state` (see resume_from); ValueError when a field is missing or of a wrong type."""
        wrong = wrong_fields(state, STATE_TYPES, required=True)
        wrong = wrong or [f"best.{name}" for name in wrong_fields(state["best"], BEST_TYPES, required=True)]
        if wrong or state["epoch"] < 0:
            raise ValueError(f"missing or wrong {', '.join(wrong) or 'epoch'}")
        best = state["best"]["state"]
        if best is not None and tensor_shapes(best) != tensor_shapes(self.model.state_dict()):
            raise ValueError("the best weights do not fit the model")
        self.epoch = state["epoch"]
        self.model.load_state_dict(state["model"])
        if self.calibration is not None:
            self.calibration.load_state_dict(state["calibration"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        self.best, self.stale_epochs, self.log = state["best"], state["stale_epochs"], state["log"]
        torch.set_rng_state(state["torch_rng"])

    def run(self, state_path: Path, log_path: Path, progress: bool = True) -> dict:
        """Train until the last epoch or early stopping; returns the final metrics (best weights loaded)."""
        bar = tqdm(total=self.config.epochs, initial=self.epoch, desc="train", unit="epoch", disable=not progress)
        with bar:
            while self.epoch < self.config.epochs and not self.stopped:
                started = time.time()
                row = {"epoch": self.epoch + 1, "lr": self.optimizer.param_groups[0]["lr"],
                       **self.train_epoch(progress), **self.evaluate()}
                self.epoch += 1
                self._track_best(row)
                self.log.append(row)
                self.seconds.append(round(time.time() - started, 3))
                write_log(log_path, self.log, "seconds", self.seconds)
                if self.epoch % self.config.checkpoint_every == 0 or self.epoch == self.config.epochs or self.stopped:
                    save_state(state_path, self.state())
                bar.update(1)
                bar.set_postfix({k: f"{row[k]:.4f}" for k in ("train_loss", "val_loss", "val_corr") if k in row})
        if self.best["state"] is not None:
            self.model.load_state_dict(self.best["state"])
        return {"epochs_run": self.epoch, "best_epoch": self.best["epoch"], "stopped_early": self.stopped,
                **{k: v for k, v in self.log[-1].items() if k.startswith("train_")}, **self.evaluate()}

    @property
    def stopped(self) -> bool:
        return self.val is not None and self.config.patience > 0 and self.stale_epochs >= self.config.patience

    def _track_best(self, row: dict) -> None:
        if self.val is None:
            return
        if row["val_loss"] < self.best["val_loss"]:
            state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.best = {"val_loss": row["val_loss"], "epoch": self.epoch, "state": state}
            self.stale_epochs = 0
        else:
            self.stale_epochs += 1


def baseline_fidelity(bank: FeatureBank, queries: torch.Tensor, targets: torch.Tensor) -> dict:
    """Fidelity of the training-free single vectors: the whole image (patch 0) and the patch mean."""
    whole = bank.features[:, 0].float()
    mean = build_fusion("mean", whole.shape[-1])(bank.features.float(), bank.padding)
    return {f"{name}_{k}": v for name, vectors in (("whole", whole), ("mean", mean))
            for k, v in fidelity(vectors @ queries.T, targets).items()}


def train_fusion(model: nn.Module, train_items: list[PatchFeatures], val_items: list[PatchFeatures] | None,
                 text_queries: torch.Tensor, config: TrainConfig, out: Path, run_config: dict,
                 device: torch.device, resume: bool = False, progress: bool = True,
                 vocabulary: torch.Tensor | None = None,
                 teacher_items: tuple[list[PatchFeatures], list[PatchFeatures] | None] | None = None) -> dict:
    """Train `model`, write the checkpoint `out` (run_config + metrics embedded) beside its state
    file (<out>.state.pt) and CSV log (<out>.log.csv); returns the metrics. `vocabulary`, `teacher_items`:
    see Trainer."""
    out = Path(out)
    state_path, log_path = out.with_name(out.name + ".state.pt"), out.with_name(out.name + ".log.csv")
    torch.manual_seed(config.seed)
    trainer = Trainer(model, train_items, val_items, text_queries, config, device, run_config, vocabulary,
                      teacher_items)
    with output_lock(out, purpose="train"):  # one training per checkpoint, state and log
        if resume and resume_from(trainer, state_path, STATE_FORMAT):
            trainer.seconds = logged_column(log_path, "seconds", len(trainer.log))
        metrics = trainer.run(state_path, log_path, progress)
        if trainer.val is not None:
            metrics.update(baseline_fidelity(trainer.val, trainer.queries, trainer.val_targets))
        save_checkpoint(out, trainer.model, {**trainer.run_config, "metrics": metrics})
    return metrics


def train_from_data(recipe: FusionRecipe, data: str | Path, out: str | Path, split: str = "train",
                    val_split: str | None = "val", classes_file: str | Path | None = None,
                    val_fraction: float = 0.1, cache_dir: str | Path | None = None, extract_batch: int = 4,
                    device: str | None = None, cluster=None, resume: bool = False, progress: bool = True,
                    warn=None, allow_incomplete: bool = False) -> dict:
    """The whole `train` command: load a CLEVR-DS split (or an image folder with a class file), extract
    the patch features (through the verified cache; on a Ray `cluster` when given), train the fusion of
    `recipe` and write the checkpoint `out` with its run configuration; returns the metrics. `warn`
    (a callable taking one line) hears of a backbone with random weights. CLEVR-DS splits with missing
    scenes or images are refused unless `allow_incomplete`."""
    seed = recipe.train.seed
    train_set, val_set = load_training_data(data, split, val_split, classes_file, val_fraction, seed,
                                            allow_incomplete)
    backbone = load_backbone(recipe.backbone or DEFAULT_BACKBONE, recipe.pretrained or DEFAULT_PRETRAINED,
                             device=device, seed=seed, image_size=recipe.image_size)
    if backbone.untrained_warning and warn is not None:
        warn(backbone.untrained_warning)
    prompts = backbone.prompt_embeddings(train_set.classes, recipe.templates)
    text_queries = training_queries(prompts, recipe.queries)
    teacher_scheme = recipe.train.loss.teacher_scheme or recipe.scheme
    extract = dict(scheme=teacher_scheme, k=recipe.k, cache_dir=cache_dir, batch_size=extract_batch,
                   progress=progress, cluster=cluster)
    train_items = extract_features(backbone, train_set.paths, **extract)
    val_items = extract_features(backbone, val_set.paths, **extract) if val_set else None
    teacher_items = None
    if teacher_scheme != recipe.scheme:  # the teacher scores every window, the student reads its own, the first
        teacher_items = (train_items, val_items)
        student = dict(scheme=recipe.scheme, k=recipe.k, input_size=backbone.image_size)
        train_items = leading_windows(train_items, map(declared_size, train_set.paths), **student)
        val_items = leading_windows(val_items, map(declared_size, val_set.paths), **student) if val_items else None
    run_config = {
        "method": "DetailCLIP (arXiv 2208.14649)",
        "backbone": backbone.name, "pretrained": backbone.pretrained, "untrained": backbone.untrained,
        "backbone_seed": seed, "image_size": recipe.image_size, "scheme": recipe.scheme, "k": recipe.k,
        "antialias": True, "size": recipe.size, "embed_dim": backbone.embed_dim, "templates": recipe.templates,
        "queries": recipe.queries,
        "classes": train_set.classes, "num_queries": int(text_queries.shape[0]),
        "data": train_set.source, "val_data": val_set.source if val_set else None,
        "data_hash": data_hash([i.image_hash for i in train_items], train_set.classes),
        "val_data_hash": data_hash([i.image_hash for i in val_items], train_set.classes) if val_items else None,
        "num_train_images": len(train_items), "num_val_images": len(val_items) if val_items else 0,
    }
    if recipe.k == AUTO_K:  # the k each image got
        run_config["cover_k"] = {name: auto_k_record(AUTO_K, map(declared_size, images.paths), backbone.image_size)
                                 for name, images in (("train", train_set), ("val", val_set)) if images}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_fusion(recipe.size, backbone.embed_dim, dropout=recipe.dropout, norm_first=recipe.pre_norm,
                             level_embedding=recipe.level_embedding, max_directions=recipe.max_directions)
    return train_fusion(model, train_items, val_items, text_queries, recipe.train, Path(out), run_config,
                        backbone.device, resume=resume, progress=progress, vocabulary=average_prompts(prompts),
                        teacher_items=teacher_items)


def training_queries(prompts: torch.Tensor, queries: str) -> torch.Tensor:
    """The text terms' queries [Q, D] from the prompt embeddings [C, T, D]: every prompt ("prompts"),
    the template-averaged, renormalised class embeddings ("classes", the benchmark's queries) or both."""
    sets = {"prompts": [prompts.flatten(0, 1)], "classes": [average_prompts(prompts)]}
    sets["both"] = sets["prompts"] + sets["classes"]
    return torch.cat(sets[queries])

"""Training a compact CLIP backbone from scratch on CLEVR-DS renders (the offline reference backbone).

Each step samples clean square crops (`clevr_ds.captions.sample_crops`: Complete Cover window
sizes, a share of whole images) from a few training images, cuts them all with one
`extract_patches` call, flips a random half horizontally (captions name no relations), captions
them and trains an open_clip model from random (seeded) weights. Loss terms, all InfoNCE with
multi-positive soft targets (pairs whose object sets are equal share the target mass):

- captions, both directions; each crop with objects also gets `hard_negatives` captions of the
  same objects with one shape or colour swapped (`clevr_ds.captions.swap_attribute`), extra texts
  it must rank below its own caption (without them colour alone separates most crops of a batch);
- `class_weight`: each crop with objects against the vocabulary's class prompts (one random
  template per class and step), the classes present sharing the target (UniCL-style);
- `class_vector_weight`: the same against learned class vectors that only training uses. At
  random initialisation the text tower maps "a red cube" and "a red sphere" to nearly the same
  point and the image features carry little shape, so neither tower gives the other a shape
  gradient and caption training stalls on colour; targets that differ per class from the first
  step give the image tower shape, and the text tower follows.

AdamW (no decay on gains, biases, embeddings and the temperature), linear warm-up and cosine decay,
gradient clipping, CLIP's learnable temperature (clamped at 100). Validation: zero-shot class
accuracy (the vocabulary's classes: "<colour> <shape>", or the shape alone for aerial scenes) on
single-object crops of the validation split. Captions and prompts follow the data's scene family
(its prompt templates and empty-ground captions). Resumable state file,
CSV log and the final fp16 safetensors + JSON sidecar are written atomically; identical runs write
identical weights and state files (training seconds go to the CSV log and the sidecar only).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from clevr_ds.captions import EMPTY_CAPTIONS, VisibilityRule, caption, object_key, sample_crops, swap_attribute
from clevr_ds.dataset import load_vocabulary, split_hash
from clevr_ds.vocab import Vocabulary
from infra.atomic import write_bytes, write_json
from infra.lock import output_lock

from ..backbones import Backbone, autocast, quiet_open_clip
from ..checkpoint import wrong_fields
from ..data import SplitImages
from ..patches import extract_patches
from ..registry import register
from ..text import resolve_templates, templates_for
from ..zero_shot import class_accuracy, predict_classes, single_object_items
from .state import logged_column, lr_factor, resume_from, save_state, write_log

STATE_FORMAT = "detailclip-backbone-state/1"
STATE_TYPES = {"step": int, "class_vectors": torch.Tensor, "rng": str, "log": list}  # checked before a state is loaded
MAX_LOGIT_SCALE = math.log(100.0)


@dataclass
class BackboneTrainConfig:
    model: str = "CLEVR-DS-ViT-T-16"
    steps: int = 2000
    batch_size: int = 128
    images_per_batch: int = 8  # images the crops of one step come from
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: float = 0.05  # fraction of the steps
    grad_clip: float = 1.0
    min_crop: float = 0.08  # smallest crop side / image side
    whole_share: float = 0.1  # share of whole images among the crops
    object_share: float = 0.0  # share of the other crops drawn around an object (1.5-8x its box)
    hard_negatives: int = 0  # captions with one attribute swapped, per crop with objects
    shape_swap_share: float = 0.5  # share of hard negatives that swap a shape (the rest swap a colour)
    class_weight: float = 0.0  # weight of the class-prompt term
    class_vector_weight: float = 0.0  # weight of the learned-class-vector term
    templates: str | None = None  # caption wrappers and validation prompts; None: the data's own (detailclip.text.templates_for)
    val_factor: float = 3.0  # validation crop side / object box side
    eval_every: int = 100
    checkpoint_every: int = 100
    seed: int = 0
    min_pixels: float = 4.0  # visibility rule (clevr_ds.captions.VisibilityRule) at the model's input size
    min_inside: float = 0.7
    max_outside_cut: float = 0.1


def multi_positive_ce(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row of logits against the uniform distribution over its positives (0/1)."""
    positive = positive.float()
    return F.cross_entropy(logits, positive / positive.sum(dim=1, keepdim=True))


def scaled_cosines(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    return logit_scale.exp() * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, image_keys: torch.Tensor,
                     text_keys: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE with multi-positive soft targets over B images and T >= B texts, the first
    B paired with the images: pairs with equal keys share the target mass. Texts past the first B
    (hard negatives, keys `text_keys[B:]`) compete only in the image-to-text direction."""
    text_keys = image_keys if text_keys is None else text_keys
    logits = scaled_cosines(image, text, logit_scale)
    same = image_keys[:, None] == text_keys[None, :]
    return (multi_positive_ce(logits, same) + multi_positive_ce(logits[:, :len(image)].T, same[:, :len(image)].T)) / 2


def class_contrastive_loss(image: torch.Tensor, classes: torch.Tensor, logit_scale: torch.Tensor,
                           present: torch.Tensor) -> torch.Tensor:
    """Image-to-class InfoNCE against one embedding per class (prompt embeddings or learned
    vectors, [C, D]): the classes present in a crop (`present` [B, C], 0/1) share its target; crops
    without objects are left out (zero when none has any)."""
    rows = present.any(dim=1)
    if not rows.any():
        return image.sum() * 0
    return multi_positive_ce(scaled_cosines(image[rows], classes, logit_scale), present[rows])


def key_ids(keys: list[str]) -> torch.Tensor:
    index: dict[str, int] = {}
    return torch.tensor([index.setdefault(k, len(index)) for k in keys])


class BackboneTrainer:
    def __init__(self, train: SplitImages, val: SplitImages, vocabulary: Vocabulary, config: BackboneTrainConfig,
                 device: torch.device, run_config: dict):
        import open_clip

        register()
        config = replace(config, templates=templates_for(config.templates, vocabulary.prompts))
        self.config, self.device, self.train, self.vocabulary = config, device, train, vocabulary
        self.empty_captions = EMPTY_CAPTIONS.get(vocabulary.prompts, EMPTY_CAPTIONS[None])
        self.classes = vocabulary.classes
        self.run_config = {**run_config, "train": asdict(config)}
        with torch.random.fork_rng(devices=[]), quiet_open_clip():
            torch.manual_seed(config.seed)
            self.model = open_clip.create_model(config.model, pretrained=None).to(device)
        self.tokenizer = open_clip.get_tokenizer(config.model)
        self.backbone = Backbone(config.model, "training", self.model, self.tokenizer, device, config.seed)
        self.rule = VisibilityRule(self.backbone.image_size, config.min_pixels, config.min_inside,
                                   config.max_outside_cut)
        self.templates = resolve_templates(config.templates)
        self.val = single_object_items(val, self.rule, config.val_factor, self.backbone.image_size,
                                       self.backbone.mean, self.backbone.std)
        generator = torch.Generator().manual_seed(config.seed)
        width = self.backbone.embed_dim
        self.class_vectors = torch.nn.Parameter(torch.randn(len(self.classes), width, generator=generator).to(device))
        groups: dict[bool, list] = {True: [], False: [self.class_vectors]}  # no decay on embeddings/gains/biases
        for name, param in self.model.named_parameters():
            groups[param.ndim >= 2 and "embedding" not in name].append(param)
        self.optimizer = torch.optim.AdamW([{"params": groups[True], "weight_decay": config.weight_decay},
                                            {"params": groups[False], "weight_decay": 0.0}], lr=config.lr)
        warmup_steps = max(1, round(config.warmup * config.steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, config.steps, warmup_steps))
        self.scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.elapsed = 0.0
        self.log: list[dict] = []
        self.timings: list[float | None] = []  # training seconds at each log row: in the CSV log, not the state

    def caption(self, objects: list[dict], box: list[float]) -> str:
        return caption(objects, box, self.rng, self.templates, empty=self.empty_captions)

    def batch(self) -> tuple[torch.Tensor, list[str], torch.Tensor, torch.Tensor]:
        """(patches [B, 3, S, S], captions [B + hard negatives], key ids of the captions, classes
        present [B, C]) of the next step, tensors on the device; the first B captions describe the
        patches."""
        cfg, n = self.config, len(self.train.scenes)
        ids = self.rng.choice(n, size=cfg.images_per_batch, replace=n < cfg.images_per_batch)
        counts = np.full(cfg.images_per_batch, cfg.batch_size // cfg.images_per_batch)
        counts[:cfg.batch_size % cfg.images_per_batch] += 1
        boxes, captions, keys, negatives, present = [], [], [], [], []
        for image_id, count in zip(ids, counts):
            scene = self.train.scenes[image_id]
            crops = sample_crops(self.rng, scene["objects"], scene["width"], scene["height"], int(count),
                                 self.rule, cfg.min_crop, cfg.whole_share, object_share=cfg.object_share)
            boxes.append(torch.tensor([box for box, _ in crops], dtype=torch.float32).reshape(-1, 4))
            captions += [self.caption(objects, box) for box, objects in crops]
            keys += [object_key(objects) for _, objects in crops]
            present += [[name in {obj["class"] for obj in objects} for name in self.classes] for _, objects in crops]
            negatives += [(box, swap_attribute(objects, self.rng, self.vocabulary, cfg.shape_swap_share))
                          for box, objects in crops if objects for _ in range(cfg.hard_negatives)]
        images = self.train.images[torch.from_numpy(ids)].to(self.device)
        patches = extract_patches(images, boxes, self.backbone.image_size, self.backbone.mean, self.backbone.std)
        flip = (torch.rand(len(patches), generator=self.generator) < 0.5).to(self.device)
        patches = torch.where(flip[:, None, None, None], patches.flip(-1), patches)
        captions += [self.caption(objects, box) for box, objects in negatives]
        keys += [object_key(objects) for _, objects in negatives]
        return patches, captions, key_ids(keys).to(self.device), torch.tensor(present, device=self.device)

    def train_step(self) -> dict:
        self.model.train()
        patches, captions, keys, present = self.batch()
        prompts = [str(self.templates[int(self.rng.integers(len(self.templates)))]).format(name)
                   for name in self.classes] if self.config.class_weight else []
        tokens = self.tokenizer(captions + prompts).to(self.device)
        with autocast(self.device):
            image, text = self.model.encode_image(patches), self.model.encode_text(tokens).float()
        image, scale = image.float(), self.model.logit_scale
        text, prompt_embeddings = text[:len(captions)], text[len(captions):]
        caption_loss = contrastive_loss(image, text, scale, keys[:len(patches)], keys)
        class_loss = class_contrastive_loss(image, prompt_embeddings, scale, present) if prompts else torch.zeros(())
        vector_loss = (class_contrastive_loss(image, self.class_vectors, scale, present)
                       if self.config.class_vector_weight else torch.zeros(()))
        loss = caption_loss + self.config.class_weight * class_loss + self.config.class_vector_weight * vector_loss
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        self.step += 1
        return {"loss": loss.item(), "caption_loss": caption_loss.item(), "class_loss": class_loss.item(),
                "class_vector_loss": vector_loss.item(),
                "logit_scale": self.model.logit_scale.exp().item()}

    @torch.no_grad()
    def evaluate(self) -> float:
        """Zero-shot accuracy on the validation single-object crops (template-averaged class prompts)."""
        self.model.eval()
        classes = self.backbone.class_embeddings(self.classes, self.config.templates)
        predicted = predict_classes(self.backbone, self.val.patches, classes)
        return class_accuracy(predicted, self.val.objects, self.vocabulary)["accuracy"]

    def state(self) -> dict:
        return {"format": STATE_FORMAT, "step": self.step, "model": self.model.state_dict(),
                "class_vectors": self.class_vectors.detach(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "generator": self.generator.get_state(),
                "rng": json.dumps(self.rng.bit_generator.state), "log": self.log, "run_config": self.run_config}

    def load_state(self, state: dict) -> None:
        """Continue from `state` (see train.resume_from); ValueError when a field is missing or of a wrong type."""
        wrong = wrong_fields(state, STATE_TYPES, required=True)
        if wrong or state["step"] < 0:
            raise ValueError(f"missing or wrong {', '.join(wrong) or 'step'}")
        self.step, self.log = state["step"], state["log"]
        self.model.load_state_dict(state["model"])
        self.class_vectors.data.copy_(state["class_vectors"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = json.loads(state["rng"])

    def run(self, state_path: Path, log_path: Path, progress: bool = True) -> dict:
        """Train to the last step; one CSV row per eval_every steps; returns the final metrics."""
        cfg = self.config
        sums: dict[str, float] = {}
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train-backbone", unit="step", disable=not progress)
        with bar:
            while self.step < cfg.steps:
                started = time.time()
                for name, value in self.train_step().items():
                    sums[name] = sums.get(name, 0.0) + value
                self.elapsed += time.time() - started
                bar.update(1)
                if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                    count = (self.step - 1) % cfg.eval_every + 1
                    row = {"step": self.step, "lr": self.scheduler.get_last_lr()[0],
                           **{k: v / count for k, v in sums.items()}, "val_acc": self.evaluate()}
                    sums = {}
                    self.log.append(row)
                    self.timings.append(round(self.elapsed, 1))
                    write_log(log_path, self.log, "train_seconds", self.timings)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", val_acc=f"{row['val_acc']:.3f}")
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    save_state(state_path, self.state())
        last = self.log[-1] if self.log else {}
        return {"steps": self.step, "train_seconds": round(self.elapsed, 1), "val_acc": last.get("val_acc"),
                "loss": last.get("loss"), "val_items": len(self.val.objects)}


def save_weights(path: Path, model: torch.nn.Module) -> None:
    """The open_clip state dict as fp16 safetensors (loadable with open_clip.create_model(pretrained=path))."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    # one metadata entry: safetensors writes several in hash order, which differs between runs
    write_bytes(path, save(tensors, metadata={"format": "open_clip"}))


def sidecar_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def train_backbone(root: Path, split: str, val_split: str, config: BackboneTrainConfig, out: Path,
                   device: torch.device, resume: bool = False, progress: bool = True,
                   allow_incomplete: bool = False) -> dict:
    """Train on `split`, validate on `val_split` (splits with missing scenes or images only with
    `allow_incomplete`); write `out` (fp16 safetensors), its JSON sidecar, <out>.state.pt and
    <out>.log.csv; returns the sidecar's content."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"the output must be a .safetensors file, not {out.name}")
    state_path, log_path = out.with_name(out.name + ".state.pt"), out.with_name(out.name + ".log.csv")
    vocabulary = load_vocabulary(root, val_split)
    started = time.time()
    train, val = (SplitImages.load(root, s, progress, allow_incomplete) for s in (split, val_split))
    run_config = {"data": str(root), "split": split, "val_split": val_split,
                  "data_hash": split_hash(root, split, train.scenes), "val_data_hash": split_hash(root, val_split, val.scenes)}
    trainer = BackboneTrainer(train, val, vocabulary, config, device, run_config)
    with output_lock(out, purpose="train-backbone"):  # one training per weights file, state and log
        if resume and resume_from(trainer, state_path, STATE_FORMAT):
            trainer.timings = logged_column(log_path, "train_seconds", len(trainer.log))
            trainer.elapsed = next((t for t in reversed(trainer.timings) if t is not None), 0.0)
        metrics = trainer.run(state_path, log_path, progress)
        save_weights(out, trainer.model)
        sidecar = {**trainer.run_config, "model": config.model, "device": device.type,
                   "num_train_images": len(trainer.train.scenes), "val_log": trainer.log, **metrics,
                   "wall_seconds_this_call": round(time.time() - started, 1)}
        write_json(sidecar_path(out), sidecar, indent=1)
    return sidecar

"""CLIP backbones: the one place that turns (architecture, pretrained) into a frozen encoder.

`pretrained` is a built-in tag (weights shipped in detailclip/weights/, see BUILTIN_WEIGHTS), an
open_clip pretrained tag (fetched through open_clip where a network exists), a local checkpoint
path, or "none" (random weights from `seed`; such a backbone is `untrained` and everything made
with it is marked so).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from infra.errors import ToolkitError

from .checkpoint import load_torch_file
from .registry import BUILTIN_WEIGHTS, DEFAULT_FUSION_CHECKPOINT, WEIGHTS_DIR, register  # noqa: F401 (re-exported)
from .text import TemplateSpec, class_prompts

DEFAULT_BACKBONE = "CLEVR-DS-ViT-T-16"  # the reference backbone shipped in detailclip/weights/
DEFAULT_PRETRAINED = "clevr-ds-v3"
UNTRAINED = ("none", "", "random")


class BackboneError(ToolkitError, ValueError):
    """An unknown architecture, pretrained tag or unreadable checkpoint."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device):
    """bf16 (fp16 where bf16 is missing) autocast on CUDA; nothing elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def is_untrained(pretrained: str | None) -> bool:
    return pretrained is None or str(pretrained).lower() in UNTRAINED


def default_pretrained(name: str) -> str:
    """The weights an architecture gets when none are named: its built-in tag, else open_clip's `openai`
    tag, else its only tag; BackboneError listing the choices otherwise."""
    import open_clip

    register()
    if name not in open_clip.list_models():
        raise BackboneError(f"unknown open_clip architecture {name!r} (see open_clip.list_models())")
    builtin = [tag for tag, (architecture, _) in BUILTIN_WEIGHTS.items() if architecture == name]
    tags = builtin or open_clip.list_pretrained_tags_by_model(name)
    if builtin or "openai" in tags or len(tags) == 1:
        return builtin[0] if builtin else ("openai" if "openai" in tags else tags[0])
    choices = f"one of its tags ({', '.join(tags)}), " if tags else ""
    raise BackboneError(f"{name} has no default weights: pass --pretrained with {choices}a checkpoint file, "
                        "or none for random weights")


def builtin_weights(tag: str, name: str | None = None) -> Path:
    """The shipped weights file of a built-in tag (checked against architecture `name` if given)."""
    architecture, filename = BUILTIN_WEIGHTS[tag]
    if name is not None and name != architecture:
        raise BackboneError(f"built-in weights {tag!r} are for {architecture}, not {name}")
    path = WEIGHTS_DIR / filename
    if not path.is_file():
        raise BackboneError(f"built-in weights {tag!r} are missing: no file {path}")
    return path


@functools.lru_cache(maxsize=None)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def pretrained_id(pretrained: str | None) -> str:
    """A stable identity of the weights: "none", an open_clip tag, or for a built-in tag or a local
    file its name + a hash of the file's content (the same in every clone and copy)."""
    if is_untrained(pretrained):
        return "none"
    if pretrained in BUILTIN_WEIGHTS:
        path, name = builtin_weights(pretrained), pretrained
    else:
        path = Path(pretrained)
        name = path.stem
    if not path.is_file():
        return str(pretrained)
    stat = path.stat()
    return f"{name}-{_file_digest(path.resolve(), stat.st_size, stat.st_mtime_ns)}"


@dataclass
class Backbone:
    """A frozen open_clip model with its preprocessing constants and tokenizer."""

    name: str
    pretrained: str
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    seed: int
    batch_size: int = 256
    load_args: dict | None = field(default=None, repr=False)  # load_backbone's, device aside; None: not rebuildable
    image_size: int = field(init=False)
    embed_dim: int = field(init=False)
    mean: tuple[float, float, float] = field(init=False)
    std: tuple[float, float, float] = field(init=False)

    def __post_init__(self) -> None:
        visual = self.model.visual
        size = visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.embed_dim = int(visual.output_dim)
        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        self.mean = tuple(float(v) for v in (cfg.get("mean") or visual.image_mean))
        self.std = tuple(float(v) for v in (cfg.get("std") or visual.image_std))

    @property
    def untrained(self) -> bool:
        return is_untrained(self.pretrained)

    @property
    def untrained_warning(self) -> str | None:
        """The line to warn with when this backbone's weights are random, else None."""
        if not self.untrained:
            return None
        return f"warning: {self.name} has random weights (pretrained none): outputs are untrained"

    @property
    def identity(self) -> dict:
        """What determines this backbone's features (the feature-cache key part)."""
        return {"backbone": self.name, "pretrained": pretrained_id(self.pretrained), "image_size": self.image_size,
                "seed": self.seed if self.untrained else None}

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """CLIP-normalised pixels [N, 3, S, S] to L2-normalised float32 features [N, D] (on device)."""
        out = []
        for start in range(0, pixels.shape[0], self.batch_size):
            chunk = pixels[start:start + self.batch_size].to(self.device, non_blocking=True)
            with autocast(self.device):
                features = self.model.encode_image(chunk)
            out.append(F.normalize(features.float(), dim=-1))
        return torch.cat(out) if out else torch.zeros((0, self.embed_dim), device=self.device)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts to L2-normalised float32 features [N, D] (on device)."""
        out = []
        texts = list(texts)
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[start:start + self.batch_size]).to(self.device)
            with autocast(self.device):
                features = self.model.encode_text(tokens)
            out.append(F.normalize(features.float(), dim=-1))
        return torch.cat(out) if out else torch.zeros((0, self.embed_dim), device=self.device)

    def prompt_embeddings(self, classnames: Sequence[str], templates: TemplateSpec = "openai80") -> torch.Tensor:
        """Every (class, template) prompt as its own query: [C, T, D], normalised."""
        prompts = class_prompts(classnames, templates)
        flat = self.encode_text([p for per_class in prompts for p in per_class])
        return flat.view(len(prompts), len(prompts[0]), -1)

    def class_embeddings(self, classnames: Sequence[str], templates: TemplateSpec = "openai80") -> torch.Tensor:
        """Template-averaged, renormalised class embeddings [C, D]."""
        return average_prompts(self.prompt_embeddings(classnames, templates))

    def gflops_per_image(self) -> float:
        """GFLOPs of one image forward, counted with the model in training mode (FlopCounterMode
        misses nn.MultiheadAttention's inference fast path) on the meta device (count_gflops)."""
        return count_gflops(self.model.visual, torch.zeros(1, 3, self.image_size, self.image_size, device=self.device))


def average_prompts(prompts: torch.Tensor) -> torch.Tensor:
    """Class embeddings [C, D] from prompt embeddings [C, T, D]: the template mean, renormalised."""
    return F.normalize(prompts.mean(dim=1), dim=-1)


def count_gflops(module: torch.nn.Module, *inputs) -> float:
    """GFLOPs of module(*inputs), in training mode, without gradients, on the meta device: from the shapes
    alone (no memory, no time, the same on every device), attention included (a real CPU pass runs it in
    a flash-attention kernel that FlopCounterMode has no formula for)."""
    from torch.func import functional_call
    from torch.utils.flop_counter import FlopCounterMode

    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    meta = {name: torch.empty_like(value, device="meta") for name, value in tensors.items()}
    was_training = module.training
    module.train()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            functional_call(module, meta, tuple(x.to("meta") if isinstance(x, torch.Tensor) else x for x in inputs))
    finally:
        module.train(was_training)
    return counter.get_total_flops() / 1e9


def load_backbone(
    name: str = DEFAULT_BACKBONE,
    pretrained: str | None = DEFAULT_PRETRAINED,
    device: str | torch.device | None = None,
    seed: int = 0,
    image_size: int | None = None,
    batch_size: int = 256,
) -> Backbone:
    """Build a frozen, eval-mode backbone; `image_size` forces a higher input size (position
    embeddings interpolated by open_clip)."""
    import open_clip

    register()
    if name not in open_clip.list_models():
        raise BackboneError(f"unknown open_clip architecture {name!r} (see open_clip.list_models())")
    device = torch.device(device) if device is not None else default_device()
    pretrained = "none" if is_untrained(pretrained) else str(pretrained)
    weights = None if pretrained == "none" else pretrained
    if weights in BUILTIN_WEIGHTS:
        weights = str(builtin_weights(weights, name))
    elif weights and not Path(weights).is_file():
        tags = open_clip.list_pretrained_tags_by_model(name)
        if weights not in tags:
            raise BackboneError(f"{weights!r} is neither a file nor a pretrained tag of {name} "
                                f"(tags: {', '.join(tags) or 'none'})")
    local = weights is not None and Path(weights).is_file()
    state = _read_weights_file(weights) if local else None
    try:
        with torch.random.fork_rng(devices=[]), quiet_open_clip():
            torch.manual_seed(seed)
            model = open_clip.create_model(name, pretrained=None if local else weights, force_image_size=image_size)
            if state is not None:
                from open_clip.model import resize_pos_embed

                resize_pos_embed(state, model)
                model.load_state_dict(state)
    except (RuntimeError, OSError, KeyError, ValueError) as e:
        raise BackboneError(f"cannot load {name} with pretrained {pretrained!r}: {e}") from None
    model = model.to(device).eval().requires_grad_(False)
    weights_file = str(Path(weights).resolve()) if local and pretrained not in BUILTIN_WEIGHTS else pretrained
    load_args = {"name": name, "pretrained": weights_file, "seed": seed, "image_size": image_size, "batch_size": batch_size}
    return Backbone(name=name, pretrained=pretrained, model=model, tokenizer=open_clip.get_tokenizer(name),
                    device=device, seed=seed, batch_size=batch_size, load_args=load_args)


def _read_weights_file(path: str) -> dict[str, torch.Tensor]:
    """The state dict of a local torch or safetensors file (read safely, see load_torch_file) in
    float32, fp16 files included: bicubic position-embedding resizing has no fp16 kernel on CPU."""
    state = load_torch_file(path, "weights file", BackboneError)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise BackboneError(f"{path} is not a weights file: it holds no state dict of tensors")
    return {str(k).removeprefix("module."): v.float() if v.is_floating_point() else v for k, v in state.items()}


@contextlib.contextmanager
def quiet_open_clip():
    """Silence open_clip's root-logger warning about random initialisation (we mark it ourselves)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)

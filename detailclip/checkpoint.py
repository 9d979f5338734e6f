"""Fusion checkpoints: weights plus the full configuration, so loading needs nothing else.

A checkpoint is a torch file of plain data (loaded with weights_only=True):
{"format": ..., "config": {...JSON-able...}, "state_dict": {...}}. config["fusion"] rebuilds the
model; the rest records backbone, pretrained, scheme, k, templates, data hash, metrics, etc.
Checkpoints come from files: the config's fields are type-checked, and the fusion it describes is
first built on the meta device (no memory) and compared with the weights' shapes. Identical
models and configs give identical bytes.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from torch import nn

from clevr_ds.schema import problem
from infra.atomic import write_bytes
from infra.errors import ToolkitError, first_line

from .cover import AUTO_K
from .fusion import FUSION_NAMES, build_fusion_from_config
from .recipe import MAX_K, SCHEMES

CHECKPOINT_FORMAT = "detailclip-fusion/1"
CONFIG_TYPES = {"backbone": str, "pretrained": str, "backbone_seed": int, "image_size": (int, type(None)),
                "scheme": str, "k": (int, str), "antialias": bool, "untrained": bool, "fusion": dict}
FUSION_TYPES = {"size": str, "dim": int, "heads": int, "encoder_layers": int, "decoder_layers": int,
                "mlp_ratio": (float, int), "dropout": (float, int), "norm_first": bool, "level_embedding": bool,
                "max_directions": int}
MAX_FUSION_NUMBER = 4096  # widths, heads, layers, directions (the base fusion: 12 layers; CLIP widths reach 1280)
ENCODING_FIELDS = ("backbone", "pretrained", "scheme", "k")  # what encoding images with a checkpoint reads
MAX_IMAGE_SIZE = 4096  # a backbone input side a checkpoint may force (CLIPs use 224-448)


class CheckpointError(ToolkitError, ValueError):
    """A missing, corrupt or foreign checkpoint file."""


def torch_bytes(obj) -> bytes:
    """The bytes of torch.save(obj): the same for equal objects (a file name would be recorded inside)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_torch_file(path: str | Path, obj) -> None:
    """torch.save(obj) to `path` atomically (a failed write leaves no file and names `path`)."""
    write_bytes(path, torch_bytes(obj))


def save_checkpoint(path: str | Path, model: nn.Module, config: dict) -> None:
    """Write the model's weights and `config` (which gains the model's fusion config) atomically."""
    payload = {"format": CHECKPOINT_FORMAT, "config": {**config, "fusion": dict(model.config)},
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    save_torch_file(path, payload)


def load_torch_file(path: str | Path, what: str, error: type[Exception] = CheckpointError):
    """The tensors and plain data of a torch file (weights_only=True) or a .safetensors file.

    Anything else, a file of pickled Python objects included, is refused (never unpickled with
    weights_only=False) with one `error` line saying that `path` is not a `what`.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"no {what} file {path}")
    if path.stat().st_size == 0:
        raise error(f"{path} is not a {what}: the file is empty")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # many types for foreign files; torch's message may advise unsafe loading
        raise error(f"{path} is not a {what}: not a torch or safetensors file of tensors and plain data") from None


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint payload, validated: its config's known fields have their types."""
    payload = load_torch_file(path, "checkpoint")
    if not (isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT
            and isinstance(payload.get("config"), dict) and isinstance(payload.get("state_dict"), dict)
            and isinstance(payload["config"].get("fusion"), dict)):
        raise CheckpointError(f"{path} is not a DetailCLIP fusion checkpoint")
    config = payload["config"]
    wrong = wrong_fields(config, CONFIG_TYPES) + [f"fusion.{name}" for name in wrong_fields(config["fusion"], FUSION_TYPES)]
    if wrong:
        raise CheckpointError(f"checkpoint {path}: wrong type of {', '.join(wrong)} in its config")
    return payload


def encoding_config(config: dict, path: str | Path) -> dict:
    """`config` if it says how to encode images (backbone, pretrained, a known scheme, k from 1 to
    MAX_K or auto), else CheckpointError."""
    missing = [name for name in ENCODING_FIELDS if name not in config]
    if missing:
        raise CheckpointError(f"checkpoint {path}: its config has no {missing[0]}")
    k = config["k"]
    if config["scheme"] not in SCHEMES or not (k == AUTO_K or (isinstance(k, int) and 1 <= k <= MAX_K)):
        raise CheckpointError(f"checkpoint {path}: scheme {config['scheme']!r} with k = {k} in its config "
                              f"(known schemes: {', '.join(SCHEMES)}; k from 1 to {MAX_K}, or {AUTO_K})")
    size = config.get("image_size")
    if size is not None and not 16 <= size <= MAX_IMAGE_SIZE:
        raise CheckpointError(f"checkpoint {path}: image_size {size} in its config (16 to {MAX_IMAGE_SIZE}, or null)")
    return config


def read_encoding_config(path: str | Path) -> dict:
    """The config of the checkpoint at `path`, checked to say how to encode images (`encoding_config`)."""
    return encoding_config(read_checkpoint(path)["config"], path)


def load_checkpoint(path: str | Path, device: str | torch.device | None = None) -> tuple[nn.Module, dict]:
    """(fusion model in eval mode on `device`, its config dict)."""
    payload = read_checkpoint(path)
    config = payload["config"]
    model = _fusion_model(config["fusion"], payload["state_dict"], path)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), config


def _fusion_model(fusion: dict, state_dict: dict, path: str | Path) -> nn.Module:
    """The fusion of `fusion` with the weights `state_dict`, built for real only once the config's
    size is known, its numbers are in range and its model (built on the meta device) has the weights'
    names and shapes."""
    if fusion.get("size") not in FUSION_NAMES:
        raise CheckpointError(f"checkpoint {path}: unknown fusion size {fusion.get('size')!r}")
    for name, value in fusion.items():
        if _fits(value, (int, float)) and not (math.isfinite(value) and 0 <= value <= MAX_FUSION_NUMBER):
            raise CheckpointError(f"checkpoint {path}: fusion {name} {value} is not between 0 and {MAX_FUSION_NUMBER}")
    try:
        with torch.device("meta"):
            expected = tensor_shapes(build_fusion_from_config(fusion).state_dict())
    except Exception as e:  # noqa: BLE001 - nothing is allocated on meta; any failure means a config that builds no fusion
        raise CheckpointError(f"checkpoint {path}: its fusion config builds no model: {first_line(e)}") from None
    if tensor_shapes(state_dict) != expected:
        raise CheckpointError(f"checkpoint {path} does not match its config: the weights' names or shapes differ")
    model = build_fusion_from_config(fusion)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not match its config: {first_line(e)}") from None
    return model


def tensor_shapes(state_dict: dict) -> dict:
    """{name: shape} of a state dict's tensors (None for a value that is no tensor)."""
    return {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state_dict.items()}


def wrong_fields(mapping: dict, types: dict, required: bool = False) -> list[str]:
    """The fields named in `types` whose values in `mapping` (read from a file) are not of that type;
    with `required`, the missing ones too."""
    return [name for name, kinds in types.items()
            if (name in mapping and not _fits(mapping[name], kinds)) or (required and name not in mapping)]


def _fits(value, kinds: type | tuple[type, ...]) -> bool:
    """isinstance(value, kinds), where a bool is no number (clevr_ds.schema's rule)."""
    return problem(value, kinds) is None

"""Fusion checkpoints: weights plus the full configuration, so loading needs nothing else.

A checkpoint is a torch file of plain data (loaded with weights_only=True):
{"format": ..., "config": {...JSON-able...}, "state_dict": {...}}. config["fusion"] rebuilds the
model; the rest records backbone, pretrained, scheme, k, templates, data hash, metrics, etc.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from infra.errors import ToolkitError
from infra.atomic import atomic_path

from .fusion import build_fusion_from_config

CHECKPOINT_FORMAT = "detailclip-fusion/1"


class CheckpointError(ToolkitError, ValueError):
    """A missing, corrupt or foreign checkpoint file."""


def save_checkpoint(path: str | Path, model: nn.Module, config: dict) -> None:
    """Write the model's weights and `config` (which gains the model's fusion config) atomically."""
    payload = {"format": CHECKPOINT_FORMAT, "config": {**config, "fusion": dict(model.config)},
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


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
    """The raw checkpoint payload, validated."""
    payload = load_torch_file(path, "checkpoint")
    if not (isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT
            and isinstance(payload.get("config"), dict) and isinstance(payload.get("state_dict"), dict)):
        raise CheckpointError(f"{path} is not a DetailCLIP fusion checkpoint")
    return payload


def load_checkpoint(path: str | Path, device: str | torch.device | None = None) -> tuple[nn.Module, dict]:
    """(fusion model in eval mode on `device`, its config dict)."""
    payload = read_checkpoint(path)
    config = payload["config"]
    try:
        model = build_fusion_from_config(config["fusion"])
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} does not match its config: {str(e).splitlines()[0]}") from None
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), config

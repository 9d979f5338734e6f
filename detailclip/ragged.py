"""Rows of many images stacked in one tensor, each image owning `counts[i]` consecutive rows (its windows)."""

from __future__ import annotations

import torch


def owners(counts: torch.Tensor) -> torch.Tensor:
    """The image each stacked row belongs to: [sum(counts)] long, on counts' device."""
    return torch.repeat_interleave(torch.arange(counts.shape[0], device=counts.device), counts)

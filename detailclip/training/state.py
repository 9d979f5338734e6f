"""What the two trainers share: their resumable state files, CSV logs and learning-rate schedule.

A state file is plain data (torch.save of tensors, numbers, strings, lists and dicts; loaded with
weights_only=True) with a "format" and the run's configuration; identical runs write identical
bytes (timings go to the CSV log only, and a resumed run reads them back from there).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from infra.atomic import atomic_path
from infra.errors import ToolkitError, first_line

from ..checkpoint import load_torch_file, save_torch_file


class ResumeError(ToolkitError, ValueError):
    """A training state of another run, or a damaged one."""


def lr_factor(step: int, total: int, warmup_steps: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def save_state(path: Path, state: dict) -> None:
    save_torch_file(path, state)


def load_state(path: Path, state_format: str) -> dict | None:
    """The resumable state saved at `path`, or None when there is none of `state_format`."""
    if not path.exists():
        return None
    state = load_torch_file(path, "training state")
    return state if isinstance(state, dict) and state.get("format") == state_format else None


def resume_from(trainer, path: Path, state_format: str) -> bool:
    """Load the state saved at `path` into `trainer` (its `run_config`, `load_state` and `log`) when
    there is one of `state_format` (True); ResumeError for another run's state or a damaged one."""
    state = load_state(path, state_format)
    if state is None:
        return False
    ensure_same_run(state.get("run_config"), trainer.run_config, str(path))
    try:
        trainer.load_state(state)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        raise ResumeError(f"training state {path} is damaged: {first_line(e)}") from None
    if not all(_numeric_row(row) for row in trainer.log):
        raise ResumeError(f"training state {path} is damaged: its log is not a list of rows of numbers")
    return True


def _numeric_row(row) -> bool:
    return isinstance(row, dict) and all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in row.items())


def ensure_same_run(saved: dict, current: dict, what: str) -> None:
    """Refuse (ResumeError) to resume `what` when its saved run configuration differs from the current one."""
    if not isinstance(saved, dict):
        raise ResumeError(f"cannot resume {what}: it records no run configuration")
    if saved != current:
        old, new = _flatten(saved), _flatten(current)
        changed = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
        raise ResumeError(f"cannot resume {what}: the run differs in {', '.join(changed)}")


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def write_log(path: Path, rows: list[dict], column: str, timings: list[float | None]) -> None:
    """The CSV log: `rows` (as the state file holds them) with their `timings` as the last column."""
    write_csv(path, [{**row, column: seconds} for row, seconds in zip(rows, timings)])


def logged_column(path: Path, column: str, rows: int) -> list[float | None]:
    """The first `rows` values of `column` in the CSV log `path`, None where it has none: timings
    are logged, not kept in state files (identical runs write identical states), so a resumed run
    reads them back from its log."""
    try:
        values = [None if pd.isna(v) else float(v) for v in pd.read_csv(path)[column]]
    except (OSError, ValueError, KeyError):  # no log, or a damaged one: the timings are unknown
        values = []
    return (values + [None] * rows)[:rows]


def _flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

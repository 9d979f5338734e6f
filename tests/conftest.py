"""Shared fixtures: a tiny real CLEVR-DS split rendered with Blender once per test session."""

from __future__ import annotations

import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_RENDER_ARGS = ["--resolution", "128", "--scales", "0.1-0.2,0.2-0.3", "--objects", "2-4", "--preset", "fast", "--quiet"]
AERIAL_ARGS = ["--family", "aerial", "--resolution", "160x120", "--scales", "0.06-0.2", "--objects", "3-5", "--preset", "fast", "-q"]


def resume_without(path: Path, out: Path, split: str = "val") -> None:
    """`render --resume` of OUT's split with `path` (the user's original input) gone, then put back."""
    with moved_away(path):
        run_cli("render", "--out", str(out), "--split", split, "--resume", "-q")


@contextmanager
def moved_away(path: Path) -> Iterator[None]:
    hidden = path.with_name(path.name + ".gone")
    path.rename(hidden)
    try:
        yield
    finally:
        hidden.rename(path)


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python cli.py ARGS` in a fresh process, as a user would."""
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"cli.py {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Four 128 px scenes of split 'val', rendered for real; treat as read-only."""
    out = tmp_path_factory.mktemp("clevr-ds") / "ds"
    run_cli("render", "--out", str(out), "--split", "val", "-n", "4", *TINY_RENDER_ARGS)
    return out


@pytest.fixture(scope="session")
def aerial_split(tmp_path_factory) -> Path:
    """Three 160x120 scenes of the aerial family, split 'val', rendered for real; treat as read-only."""
    out = tmp_path_factory.mktemp("aerial") / "ds"
    run_cli("render", "--out", str(out), "--split", "val", "-n", "3", *AERIAL_ARGS)
    return out


@pytest.fixture
def tiny_copy(tiny_dataset, tmp_path) -> Path:
    """A writable copy of the tiny split (for tests that export into it or spoil it)."""
    return Path(shutil.copytree(tiny_dataset, tmp_path / "ds"))

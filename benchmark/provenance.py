"""Where a run came from: the software that made it (this project's version, the git commit of its checkout)
and the standard split its data claims to be.

None of it enters a run's identity (`benchmark.results.run_id`), so a run keeps its file name whichever
version or commit made it; `benchmark.verify` checks the standard split against its published hash.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from clevr_ds.standards import STANDARDS, claimed_by

REPOSITORY = Path(__file__).resolve().parents[1]  # the checkout this code runs from, when it is one
DISTRIBUTIONS = ("clevr-ds", "torch", "open_clip_torch", "numpy", "scikit-learn")  # clevr-ds: this project
GIT_TIMEOUT_S = 10


def _git(repository: Path, *args: str) -> str:
    """git's output in `repository`, taking no optional lock (a run never blocks the user's own git)."""
    command = ["git", "--no-optional-locks", "-C", str(repository), *args]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=GIT_TIMEOUT_S).stdout


def git_state(repository: Path = REPOSITORY) -> dict | None:
    """{"commit": HEAD, "dirty": whether tracked files differ from it} of the git checkout `repository`; None
    without git, when `repository` is not the top of a checkout (an installed wheel, a venv inside another
    project), or on any git failure: provenance never fails a run."""
    try:
        top, commit = _git(repository, "rev-parse", "--show-toplevel", "HEAD").splitlines()
        if Path(top).resolve() != Path(repository).resolve():
            return None
        dirty = bool(_git(repository, "status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return {"commit": commit, "dirty": dirty}


def software_versions() -> dict:
    """Python's version, each distribution's (None when not installed; clevr-ds: the project's) and `git_state()`."""
    out = {"python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return {**out, "git": git_state()}


def standard_claim(source) -> dict | None:
    """{"name", "split"} of the standard split (clevr_ds.standards) whose settings the meta of a CLEVR-DS split
    (a benchmark.sources.Source read from its folder or its WebDataset shards) records; None for any other split,
    COCO or DOTA."""
    if source.meta is None:
        return None
    try:
        claim = claimed_by(source.meta)
    except TypeError:  # a meta whose settings are of the wrong kinds (bench reads only its scales) claims nothing
        return None
    if claim is None:
        return None
    standard, split = claim
    return {"name": next(name for name, s in STANDARDS.items() if s is standard), "split": split}

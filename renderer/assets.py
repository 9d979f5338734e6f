"""The driver's side of a user's models (`--assets DIR`; no bpy here): measure them in a Blender process,
add them to the vocabulary, and store the folder in the split (ROOT/assets/<content hash>)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from clevr_ds.assets import AssetError, folder_files, folder_hash, read_manifest, stored_folder, with_assets
from clevr_ds.vocab import Vocabulary
from infra.cluster import PROJECT_ROOT
from infra.paths import inside

from .executors import worker_env


def asset_vocabulary(folder: str | Path, vocab: Vocabulary) -> Vocabulary:
    """`vocab` with the models of FOLDER/assets.json; AssetError (one line) before anything is written."""
    specs = read_manifest(folder, vocab)
    proc = subprocess.run([sys.executable, "-m", "renderer.asset_import", str(folder), vocab.name], capture_output=True,
                          text=True, env=worker_env(), cwd=PROJECT_ROOT)  # fmt: skip
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()] or [f"measuring the models failed (exit {proc.returncode})"]
        raise AssetError(f"--assets {folder}: {lines[-1]}")
    return with_assets(vocab, specs, json.loads(proc.stdout.splitlines()[-1]), stored_folder(folder_hash(folder)))


def store_assets(folder: str | Path, out: Path) -> None:
    """Copy FOLDER to OUT/assets/<content hash> unless it is there: into a temporary folder, then renamed."""
    target = inside(out, *stored_folder(folder_hash(folder)).split("/"))
    if target.is_dir():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=target.parent) as tmp:
        for path in folder_files(folder):
            copy = Path(tmp) / path.relative_to(folder)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        Path(tmp).rename(target)
        Path(tmp).mkdir()  # for TemporaryDirectory's clean-up


def resolved(vocab: Vocabulary, root: Path, source: Path) -> Vocabulary:
    """`vocab` with each model's file as a path inside `root` (AssetError for one leaving it, or missing)."""
    shapes = {}
    for name, params in vocab.shapes.items():
        if params.get("mesh") == "asset":
            path = inside(root, *params["file"].split("/"), source=source)
            if not path.is_file():
                raise AssetError(f"{source}: model {params['file']!r} of class {name!r} is missing from {root}")
            params = dict(params, file=str(path))
        shapes[name] = params
    return replace(vocab, shapes=shapes)

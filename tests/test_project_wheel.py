"""The wheel behaves: built from the repository (sdist and wheel), installed into a clean venv, it runs from
another folder with its shipped weights; measuring scripts stay out; extras name what they install.

The clean venv reaches the dependencies (bpy, torch, ...) through a .pth line to this venv's
site-packages, whose own .pth files (the editable install of the repository) it does not run: what it
imports of this project is the wheel's copy, checked below."""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
PACKAGES = {"infra", "clevr_ds", "renderer", "detailclip", "benchmark", "cli_commands"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """sdist and wheel, built from a copy of the files git tracks (the build writes build/ beside its source)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    tracked = subprocess.run(["git", "ls-files", "-z"], check=True, capture_output=True, cwd=ROOT).stdout.decode().split("\0")
    for name in filter(None, tracked):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out), str(source)],
                   check=True, capture_output=True, cwd=source)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def venv(built, tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, capture_output=True)
    site = next((env / "lib").glob("python3.*")) / "site-packages"
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(built.glob("*.whl"))
    subprocess.run([str(env / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    return env


def run(env: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(env / "bin" / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_the_wheel_holds_the_packages_their_data_and_nothing_else(built):
    names = zipfile.ZipFile(next(built.glob("*.whl"))).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == PACKAGES | {"cli.py"}  # measure/, scripts/ and tests/ are not installed
    assert "clevr_ds/data/aerial_vocabulary.json" in names and any(n.startswith("detailclip/weights/") for n in names)
    assert len(list(built.glob("*.tar.gz"))) == 1


def test_extras_name_what_they_install(built):
    with zipfile.ZipFile(next(built.glob("*.whl"))) as whl:
        meta = email.message_from_bytes(whl.read(next(n for n in whl.namelist() if n.endswith("dist-info/METADATA"))))
    requires = meta.get_all("Requires-Dist")
    assert any(r.startswith("ray==") and 'extra == "ray"' in r for r in requires)
    assert not any(r.startswith("ray") and "extra" not in r for r in requires)  # Ray is optional
    assert any(r.startswith("mkdocs") and 'extra == "docs"' in r for r in requires)
    assert any(r.startswith("pytest") and 'extra == "dev"' in r for r in requires)


def test_the_installed_tool_renders_and_benches_from_another_folder(venv, tmp_path):
    where = run(venv, tmp_path, "python", "-c", "import clevr_ds, detailclip; print(clevr_ds.__file__, detailclip.__file__)")
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout
    assert "measure" not in run(venv, tmp_path, "python", "-c", "import pkgutil; print([m.name for m in pkgutil.iter_modules()])").stdout
    assert "cc-max" in run(venv, tmp_path, "clevr-ds", "list").stdout
    run(venv, tmp_path, "clevr-ds", "render", "-n", "2", "--resolution", "96", "--scales", "0.2-0.4", "--objects", "1-2",
        "--preset", "fast", "--out", "ds", "-q")
    run(venv, tmp_path, "clevr-ds", "bench", "--data", "ds", "--model", "clip,detailclip", "--out", "results", "-q")
    runs = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert sorted(r["method"] for r in runs) == ["clip", "detailclip"]
    assert {r["pretrained"] for r in runs} == {"clevr-ds-v3"}  # the shipped weights, from the wheel

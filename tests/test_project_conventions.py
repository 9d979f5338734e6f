"""The conventions CLIP users know: a console script, --version, `list`, weights by open_clip tag."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONSOLE_SCRIPT = Path(sys.executable).parent / "clevr-ds"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd="/", check=True)


def test_console_script_prints_the_project_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _run(str(CONSOLE_SCRIPT), "--version").stdout.strip() == f"clevr-ds, version {version}"


def test_list_names_every_method_and_the_shipped_weights():
    out = _run(str(CONSOLE_SCRIPT), "list").stdout
    names = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    expected_methods = {"clip", "clip-hires", "grid-mean", "grid-max", "cc-mean", "cc-max", "oracle-crop", "s2", "detailclip"}
    assert expected_methods <= names
    assert {"CLEVR-DS-ViT-T-16", "CLEVR-DS-ViT-T-16:clevr-ds-v3"} <= names
    assert [line for line in out.splitlines() if not line.startswith("  ")] == ["methods:", "backbones:", "pretrained:"]


@pytest.mark.parametrize("order", ["detailclip first", "open_clip first"])
def test_open_clip_creates_the_shipped_backbone_by_tag(order):
    """open_clip's own factory loads the shipped file by tag; the weights equal the file's tensors."""
    imports = "import detailclip, open_clip" if order == "detailclip first" else "import open_clip, detailclip"
    script = f"""
{imports}
import torch
from safetensors.torch import load_file
model, _, preprocess = open_clip.create_model_and_transforms("CLEVR-DS-ViT-T-16", pretrained="clevr-ds-v3")
stored = load_file("{ROOT}/detailclip/weights/clevr-ds-vit-t-16-v3.safetensors")
state = model.state_dict()
assert set(stored) == set(state), set(stored) ^ set(state)
assert all(torch.equal(state[k], stored[k].to(state[k].dtype)) for k in stored)
assert ("CLEVR-DS-ViT-T-16", "clevr_ds_v3") in open_clip.list_pretrained()
print(preprocess.transforms[0].size)
"""
    assert _run(sys.executable, "-c", script).stdout.strip() == "112"


def test_a_backbone_without_named_weights_gets_its_default_tag_or_the_list():
    import open_clip

    from detailclip.backbones import BackboneError, default_pretrained

    assert default_pretrained("CLEVR-DS-ViT-T-16") == "clevr-ds-v3"
    assert "openai" in open_clip.list_pretrained_tags_by_model("ViT-B-32") and default_pretrained("ViT-B-32") == "openai"
    tags = open_clip.list_pretrained_tags_by_model("ViT-H-14")
    assert len(tags) > 1 and "openai" not in tags
    with pytest.raises(BackboneError) as error:
        default_pretrained("ViT-H-14")
    assert all(tag in str(error.value) for tag in tags)
    with pytest.raises(BackboneError, match="no default weights.*none for random weights"):
        default_pretrained("tiny-clip-vit-p8-32")


def test_bench_names_the_tags_when_a_backbone_has_no_default(tmp_path):
    from tests.benchmark_fixtures import make_dataset, random_scenes

    data = make_dataset(tmp_path / "data", random_scenes(2))
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "bench", "--data", str(data), "--model", "clip",
                           "--backbone", "ViT-H-14"], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "ViT-H-14 has no default weights" in proc.stderr and "laion2b" in proc.stderr

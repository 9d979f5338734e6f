"""`cli.py index` and `cli.py search` against an independent oracle: features and fused vectors computed
here through the library's encode path, scored by hand."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from benchmark.index import ImageIndex
from benchmark.search import load_index, search_index
from cli import main
from detailclip.backbones import load_backbone
from detailclip.checkpoint import load_checkpoint
from detailclip.encode import fuse
from detailclip.features import extract_features
from tests.benchmark_fixtures import TINY_BACKBONE, make_checkpoint

QUERY = "a red cube"
TOP = 3


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def images(tiny_dataset):
    return sorted((tiny_dataset / "images" / "val").glob("*.png"))


def oracle(method: str, paths, checkpoint) -> tuple[torch.Tensor, list[int]]:
    """(cosine of the query with each image's vector, max over an image's vectors [N], vectors per image)."""
    backbone = load_backbone(TINY_BACKBONE, "none", seed=0)
    text = backbone.encode_text([QUERY])[0].cpu()
    items = extract_features(backbone, paths, scheme="whole" if method == "clip" else "cc", k=2, progress=False)
    if method == "detailclip":
        model, _ = load_checkpoint(checkpoint)
        return fuse(model, items) @ text, [1] * len(items)
    if method == "clip":  # the renormalised whole-image vector
        return torch.stack([F.normalize(item.features[0], dim=0) @ text for item in items]), [1] * len(items)
    return torch.stack([(item.features @ text).max() for item in items]), [item.num_patches for item in items]


@pytest.mark.parametrize("method", ["clip", "cc-max", "detailclip"])
def test_search_matches_a_direct_computation(capsys, tiny_dataset, tmp_path, method):
    checkpoint = make_checkpoint(tmp_path / "fusion.pt", k=2)
    random = ["--backbone", TINY_BACKBONE, "--pretrained", "none"]
    weights = ["--checkpoint", checkpoint] if method == "detailclip" else random
    out = tmp_path / "index.npz"
    index = ["index", tiny_dataset / "images", "--out", out, "--method", method, "--cover-k", 2, *weights, "--quiet"]
    code, _, err = run(capsys, *index)
    assert code == 0, err
    paths = images(tiny_dataset)
    loaded = load_index(out)
    header = loaded.header
    assert (header["backbone"], header["method"]) == (TINY_BACKBONE, method)
    assert header["root"] == str((tiny_dataset / "images").resolve())
    assert [i["path"] for i in header["images"]] == [f"val/{p.name}" for p in paths]
    assert [i["sha256"] for i in header["images"]] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    expected, counts = oracle(method, paths, checkpoint)
    assert loaded.index.counts.tolist() == counts
    order = torch.argsort(expected, descending=True, stable=True)[:TOP]
    sheet = tmp_path / "hits.png"
    code, table, err = run(capsys, "search", out, QUERY, "--top", TOP, "--sheet", sheet)
    assert code == 0, err
    rows = [line.split("\t") for line in table.splitlines()]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert [row[2] for row in rows] == [str(paths[i].resolve()) for i in order.tolist()]
    np.testing.assert_allclose([float(row[1]) for row in rows], expected[order].numpy(), atol=6e-5)
    with Image.open(sheet) as image:
        assert image.size == (TOP * 128, 128)

    # Rerunning resumes from the feature cache beside the index and writes the same index.
    assert (tmp_path / "feature_cache").is_dir()
    assert run(capsys, *index)[0] == 0
    torch.testing.assert_close(load_index(out).index.vectors, loaded.index.vectors, atol=0, rtol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feature_cache", "fusion.pt", "hits.png", "index.npz"]


def test_search_index_is_exact_max_over_vectors():
    torch.manual_seed(0)
    vectors = torch.nn.functional.normalize(torch.randn(9, 8), dim=1)
    index = ImageIndex(vectors, torch.tensor([2, 3, 1, 3]))
    text = torch.nn.functional.normalize(torch.randn(2, 8), dim=1)
    scores, order = search_index(index, text, top=10)
    brute = torch.stack([(text @ part.T).amax(1) for part in vectors.split([2, 3, 1, 3])], 1)
    assert order.shape == (2, 4)  # at most the number of images
    torch.testing.assert_close(scores, brute.gather(1, order))
    assert torch.equal(order, torch.argsort(brute, dim=1, descending=True, stable=True))


def test_bad_index_file_is_one_line(capsys, tmp_path):
    for path, message in ((tmp_path / "missing.npz", "no index file"), (tmp_path / "bad.npz", "is not an index file")):
        path.parent.mkdir(exist_ok=True)
        if path.name == "bad.npz":
            path.write_bytes(b"not a zip")
        code, _, err = run(capsys, "search", path, QUERY)
        assert code != 0 and message in err and err.count("\n") == 1
    code, _, err = run(capsys, "index", tmp_path / "nowhere", "--out", tmp_path / "i.npz", "--quiet")
    assert code != 0 and "no image folder" in err and err.count("\n") == 1


def test_default_index_uses_the_shipped_weights(capsys, tiny_dataset, tmp_path):
    from detailclip.backbones import DEFAULT_BACKBONE, DEFAULT_FUSION_CHECKPOINT, DEFAULT_PRETRAINED

    out = tmp_path / "index.npz"
    assert run(capsys, "index", tiny_dataset / "images", "--out", out, "--quiet")[0] == 0
    header = load_index(out).header
    assert (header["backbone"], header["pretrained"]) == (DEFAULT_BACKBONE, DEFAULT_PRETRAINED)
    assert header["method"] == "detailclip"
    assert header["method_settings"]["checkpoint"] == str(DEFAULT_FUSION_CHECKPOINT)
    code, table, _ = run(capsys, "search", out, "a yellow sphere", "--templates", "openai80")
    assert code == 0 and len(table.splitlines()) == 4  # fewer images than --top: every image once

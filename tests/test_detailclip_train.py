"""The train and encode commands end to end (tiny random backbone), checkpoints and resume."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from clevr_ds.vocab import Vocabulary
from cli_commands.detailclip import encode, train
from detailclip.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from detailclip.fusion import build_fusion
from detailclip.recipe import FusionRecipe

TINY = ["--backbone", "tiny-clip-vit-p8-32", "--pretrained", "none", "--size", "tiny", "--cover-k", "4",
        "--templates", "short", "--batch-size", "4", "--quiet"]


def _image(rng, path, height=96, width=128):
    array = np.full((height, width, 3), 120, dtype=np.uint8)
    x, y = rng.integers(0, width - 12), rng.integers(0, height - 12)
    array[y:y + 12, x:x + 12] = rng.integers(0, 256, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return [int(x), int(y), 12, 12]


@pytest.fixture
def clevr_dir(tmp_path):
    """A minimal CLEVR-DS folder: meta, scenes and images of a train and a val split."""
    root = tmp_path / "clevr"
    rng = np.random.default_rng(0)
    vocabulary = Vocabulary.load().to_dict()
    for split, count in (("train", 8), ("val", 3)):
        (root / "meta").mkdir(parents=True, exist_ok=True)
        (root / "meta" / f"{split}.json").write_text(json.dumps({"vocabulary": vocabulary, "num_images": count}))
        for i in range(count):
            name = f"CLEVR-DS_{split}_{i:06d}.png"
            bbox = _image(rng, root / "images" / split / name)
            scene = {"split": split, "image_index": i, "image_filename": name, "width": 128, "height": 96,
                     "objects": [{"class": "red cube", "bbox": bbox, "visible": True}]}
            (root / "scenes" / split).mkdir(parents=True, exist_ok=True)
            (root / "scenes" / split / f"{name[:-4]}.json").write_text(json.dumps(scene))
    return root


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(6):
        _image(rng, tmp_path / "plain" / f"sub{i % 2}" / f"{i}.png", height=80 + i, width=100)
    (tmp_path / "classes.txt").write_text("red cube\nblue sphere\n")
    return tmp_path / "plain", tmp_path / "classes.txt"


def _run(command, args):
    result = CliRunner().invoke(command, [str(a) for a in args], standalone_mode=False, catch_exceptions=True)
    return result


def test_train_on_clevr_ds_then_encode(clevr_dir, tmp_path):
    out = tmp_path / "run" / "model.pt"
    result = _run(train, ["--data", clevr_dir, "--epochs", "3", "--teacher-temperature", "0", "--out", out, *TINY])
    assert result.exception is None, result.output
    model, config = load_checkpoint(out, device="cpu")
    assert config["backbone"] == "tiny-clip-vit-p8-32" and config["untrained"] is True
    assert (config["k"], config["scheme"], config["size"], config["fusion"]["dim"]) == (4, "cc-fine", "tiny", 32)
    assert config["data"]["split"] == "train" and config["val_data"]["split"] == "val"
    assert len(config["classes"]) == 24 and config["num_queries"] == 24 * 7 and len(config["data_hash"]) == 64
    log = (out.parent / "model.pt.log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,lr,train_") and len(log) == 4
    assert list((out.parent / "feature_cache").glob("*/key.json"))

    vectors_path = tmp_path / "vectors.npz"
    result = _run(encode, ["--checkpoint", out, "--images", clevr_dir / "images" / "val", "--out", vectors_path,
                           "--quiet"])
    assert result.exception is None, result.output
    saved = np.load(vectors_path)
    assert saved["vectors"].shape == (3, 32) and bool(saved["untrained"])
    assert saved["paths"].tolist() == [f"CLEVR-DS_val_{i:06d}.png" for i in range(3)]
    np.testing.assert_allclose(np.linalg.norm(saved["vectors"], axis=1), 1.0, atol=1e-5)
    # one distinct vector per image (the values themselves are checked against a direct open_clip
    # forward + fusion in tests/test_project_oracles.py::test_encode_equals_open_clip_forward_then_fusion)
    gram = saved["vectors"] @ saved["vectors"].T
    assert (gram[~np.eye(3, dtype=bool)] < 1 - 1e-4).all()
    _check_val_fidelity(config, saved["vectors"], sorted((clevr_dir / "images" / "val").glob("*.png")))


def _check_val_fidelity(config, fused, val_paths):
    """The recorded val_corr / val_mae / val_rank_corr, derived by hand: numpy Pearson and mean
    absolute error, scipy Spearman per query, between the fused vectors' similarities and the plain max
    teacher (max over each image's patches of the teacher's scheme), with the text queries from a direct open_clip forward:
    every (class, template) prompt, and/or each class's template mean renormalised in numpy."""
    import open_clip
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES
    from scipy.stats import spearmanr

    from detailclip.backbones import load_backbone
    from detailclip.features import extract_features

    backbone = load_backbone(config["backbone"], "none", device="cpu", seed=config.get("backbone_seed", 0))
    tokens = open_clip.get_tokenizer(config["backbone"])([t(c) for c in config["classes"] for t in SIMPLE_IMAGENET_TEMPLATES])
    with torch.no_grad():
        prompts = torch.nn.functional.normalize(backbone.model.encode_text(tokens).float(), dim=-1).numpy()
    means = prompts.reshape(len(config["classes"]), len(SIMPLE_IMAGENET_TEMPLATES), -1).mean(axis=1)
    classes = means / np.linalg.norm(means, axis=1, keepdims=True)
    queries = {"prompts": prompts, "classes": classes, "both": np.concatenate([prompts, classes])}[config["queries"]]
    assert config["num_queries"] == len(queries)
    teacher_scheme = config["train"]["loss"]["teacher_scheme"] or config["scheme"]
    items = extract_features(backbone, val_paths, scheme=teacher_scheme, k=config["k"], progress=False)
    teacher = np.stack([(item.data.astype(np.float64) @ queries.T).max(0) for item in items])
    student = fused.astype(np.float64) @ queries.T
    metrics = config["metrics"]
    assert metrics["val_corr"] == pytest.approx(np.corrcoef(student.ravel(), teacher.ravel())[0, 1], abs=1e-4)
    assert metrics["val_mae"] == pytest.approx(np.abs(student - teacher).mean(), abs=1e-4)
    rank = np.mean([spearmanr(student[:, q], teacher[:, q])[0] for q in range(queries.shape[0])])
    assert metrics["val_rank_corr"] == pytest.approx(rank, abs=1e-4)


def test_train_on_the_benchmark_class_queries(clevr_dir, tmp_path):
    """--queries both: the text terms use every prompt and the template-averaged class embeddings
    (the benchmark's queries); the recorded val fidelity is over all of them."""
    out = tmp_path / "both.pt"
    result = _run(train, ["--data", clevr_dir, "--epochs", "2", "--queries", "both", "--teacher-temperature", "0",
                          "--out", out, *TINY])
    assert result.exception is None, result.output
    _, config = load_checkpoint(out, device="cpu")
    assert config["queries"] == "both" and config["num_queries"] == 24 * 7 + 24
    vectors = tmp_path / "vectors.npz"
    assert _run(encode, ["--checkpoint", out, "--images", clevr_dir / "images" / "val", "--out", vectors,
                         "--quiet"]).exception is None
    _check_val_fidelity(config, np.load(vectors)["vectors"], sorted((clevr_dir / "images" / "val").glob("*.png")))
    unknown = _run(train, ["--data", clevr_dir, "--queries", "captions", "--out", tmp_path / "x.pt", *TINY])
    assert "'captions' is not one of 'prompts', 'classes', 'both'" in unknown.exception.format_message()
    with pytest.raises(ValueError, match=r"^unknown query set 'captions' \(known: prompts, classes, both\)$"):
        FusionRecipe(queries="captions")


def test_train_records_the_listwise_term(clevr_dir, tmp_path):
    """`--list-weight/--list-depth` reach the loss: the run configuration keeps them, the log has the
    term's column (absent at weight 0) and a depth below 1 is refused."""
    out = tmp_path / "list.pt"
    result = _run(train, ["--data", clevr_dir, "--epochs", "1", "--list-weight", "2", "--list-depth", "3",
                          "--out", out, *TINY])
    assert result.exception is None, result.output
    _, config = load_checkpoint(out, device="cpu")
    assert (config["train"]["loss"]["list_weight"], config["train"]["loss"]["list_depth"]) == (2.0, 3)
    assert "train_list" in (tmp_path / "list.pt.log.csv").read_text().splitlines()[0].split(",")
    off = tmp_path / "off.pt"
    assert _run(train, ["--data", clevr_dir, "--epochs", "1", "--list-weight", "0", "--out", off,
                        *TINY]).exception is None
    assert "train_list" not in (tmp_path / "off.pt.log.csv").read_text().splitlines()[0].split(",")
    bad = _run(train, ["--data", clevr_dir, "--list-depth", "0", "--out", tmp_path / "x.pt", *TINY])
    assert "0 is not in the range x>=1" in bad.exception.format_message()


def test_train_distils_the_calibrated_teacher(clevr_dir, tmp_path):
    """By default `train` distils the calibrated teacher of the shipped recipe (temperature 2, level
    penalty 0.025); `--teacher-temperature 0` alone is the plain max, without a penalty; a penalty given
    with the plain max is refused in one line. The settings reach the run configuration."""
    from cli_commands.detailclip import recipe_from_options

    out = tmp_path / "cal.pt"
    result = _run(train, ["--data", clevr_dir, "--epochs", "1", "--out", out, *TINY])
    assert result.exception is None, result.output
    _, config = load_checkpoint(out, device="cpu")
    loss = config["train"]["loss"]
    assert (loss["teacher_temperature"], loss["teacher_level_penalty"]) == (2.0, 0.025)
    plain = recipe_from_options(train.make_context("train", ["--data", "d", "--out", "o.pt", "--teacher-temperature",
                                                             "0"]).params).train.loss  # fmt: skip
    assert (plain.teacher_temperature, plain.teacher_level_penalty) == (0.0, 0.0)
    bad = _run(train, ["--data", clevr_dir, "--teacher-temperature", "0", "--teacher-level-penalty", "0.1", "--out",
                       tmp_path / "x.pt", *TINY])  # fmt: skip
    assert bad.exit_code == 1 and "needs a teacher temperature" in bad.exception.format_message()
    assert not (tmp_path / "x.pt").exists()


def test_a_cc_student_of_the_cc_fine_teacher(clevr_dir, tmp_path):
    """`--teacher-scheme cc-fine`: the targets are the max over the cover and its magnified windows (the
    recorded val fidelity, derived by hand against cc-fine windows), the student reads and encodes the
    cover alone; one extraction (cc-fine) serves both. A teacher whose windows do not begin with the
    student's is refused in one line, before anything is written."""
    out = tmp_path / "fine" / "model.pt"
    result = _run(train, ["--data", clevr_dir, "--epochs", "1", "--teacher-temperature", "0", "--scheme", "cc",
                          "--teacher-scheme", "cc-fine", "--out", out, *TINY])  # fmt: skip
    assert result.exception is None, result.output
    _, config = load_checkpoint(out, device="cpu")
    assert (config["scheme"], config["train"]["loss"]["teacher_scheme"]) == ("cc", "cc-fine")
    keys = [json.loads(p.read_text()) for p in (out.parent / "feature_cache").glob("*/key.json")]
    assert [key["scheme"] for key in keys] == ["cc-fine"]
    vectors_path = tmp_path / "vectors.npz"
    result = _run(encode, ["--checkpoint", out, "--images", clevr_dir / "images" / "val", "--out", vectors_path,
                           "--quiet"])
    assert result.exception is None, result.output
    _check_val_fidelity(config, np.load(vectors_path)["vectors"], sorted((clevr_dir / "images" / "val").glob("*.png")))
    for scheme, teacher in (("grid", "cc-fine"), ("cc-fine", "cc"), ("cc", "grid")):
        bad = _run(train, ["--data", clevr_dir, "--scheme", scheme, "--teacher-scheme", teacher, "--out",
                           tmp_path / "x.pt", *TINY])  # fmt: skip
        assert bad.exit_code == 1 and "must begin with the student's" in bad.exception.format_message()
        assert not (tmp_path / "x.pt").exists()


def test_leading_windows_are_the_student_scheme_s_features(tmp_path):
    """The first window_count features of each image's cc-fine features, at its own auto k, are its cc
    features (images of several sizes, so several k)."""
    from detailclip.backbones import load_backbone
    from detailclip.cover import auto_k
    from detailclip.features import extract_features
    from detailclip.features import leading_windows

    rng, sizes = np.random.default_rng(2), [(40, 50), (96, 128), (70, 200)]
    images = [tmp_path / f"{i}.png" for i in range(len(sizes))]
    for path, (height, width) in zip(images, sizes):
        _image(rng, path, height, width)
    assert [auto_k(h, w, 32) for h, w in sizes] == [2, 4, 7]
    backbone = load_backbone("tiny-clip-vit-p8-32", "none", device="cpu")
    fine = extract_features(backbone, images, scheme="cc-fine", k="auto", progress=False)
    cover = extract_features(backbone, images, scheme="cc", k="auto", progress=False)
    leading = leading_windows(fine, sizes, "cc", "auto", backbone.image_size)
    assert all(f.num_patches > c.num_patches for f, c in zip(fine, cover))
    for lead, item in zip(leading, cover):
        assert (lead.path, lead.image_hash) == (item.path, item.image_hash)
        np.testing.assert_array_equal(lead.level_ids, item.level_ids)
        np.testing.assert_allclose(lead.data.astype(np.float32), item.data.astype(np.float32), atol=2e-3)


def test_train_on_a_plain_folder_resumes(folder, tmp_path):
    images, classes = folder
    out = tmp_path / "m.pt"
    args = ["--data", images, "--classes", classes, "--val-fraction", "0.34", "--checkpoint-every", "1", "--out", out,
            *TINY]
    assert _run(train, [*args, "--epochs", "2", "--patience", "0"]).exception is None
    state_path = tmp_path / "m.pt.state.pt"
    state = torch.load(state_path, weights_only=True)
    assert state["epoch"] == 2
    assert _run(train, [*args, "--epochs", "2", "--patience", "0", "--resume"]).exception is None
    log = (tmp_path / "m.pt.log.csv").read_text().splitlines()
    assert len(log) == 3  # resuming a finished run adds no epochs
    different = _run(train, [*args, "--epochs", "2", "--patience", "0", "--lr", "0.1", "--resume"])
    assert "train.lr" in str(different.exception)
    _, config = load_checkpoint(out, device="cpu")
    assert config["num_train_images"] == 4 and config["num_val_images"] == 2 and config["classes"] == ["red cube",
                                                                                                     "blue sphere"]


def test_bad_input_is_one_clear_line(folder, tmp_path):
    images, classes = folder
    no_classes = _run(train, ["--data", images, "--out", tmp_path / "x.pt", *TINY])
    assert "--classes" in str(no_classes.exception)
    unknown = _run(train, ["--data", images, "--classes", classes, "--out", tmp_path / "x.pt", *TINY[:-1],
                           "--backbone", "nonexistent-net"])
    assert "unknown open_clip architecture" in str(unknown.exception)
    bad = _run(train, ["--data", images, "--classes", classes, "--out", tmp_path / "x.pt", *TINY, "--teacher-levels", "0,x"])
    assert bad.exception.format_message() == ("Invalid value for '--teacher-levels': "
                                              "'0,x' is not 'all' or comma-separated levels like 0,4,5")
    negative = _run(train, ["--data", images, "--classes", classes, "--out", tmp_path / "x.pt", *TINY,
                            "--teacher-levels", "0,-1"])
    assert str(negative.exception) == "teacher levels must be levels 0, 1, ... (0: the whole image), not (0, -1)"
    too_deep = _run(train, ["--data", images, "--classes", classes, "--out", tmp_path / "x.pt", *TINY,
                            "--teacher-levels", "0,9"])  # k = 4 has no level 9
    assert str(too_deep.exception).startswith("an image has no patch of teacher level 9 (its levels: [0, 1, ")
    missing = _run(encode, ["--checkpoint", tmp_path / "none.pt", "--images", images, "--out", tmp_path / "v.npz"])
    assert "no checkpoint file" in str(missing.exception)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "v.npz").exists()


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_fusion("tiny", 32, dropout=0.0, norm_first=True).eval()
    save_checkpoint(tmp_path / "c.pt", model, {"backbone": "b", "k": 10, "metrics": {"val_corr": 0.5}})
    loaded, config = load_checkpoint(tmp_path / "c.pt", device="cpu")
    assert config["k"] == 10 and config["fusion"]["norm_first"] is True and config["metrics"] == {"val_corr": 0.5}
    features = torch.nn.functional.normalize(torch.randn(2, 7, 32), dim=-1)
    torch.testing.assert_close(loaded(features), model(features))
    assert not list(tmp_path.glob("*.tmp-*"))

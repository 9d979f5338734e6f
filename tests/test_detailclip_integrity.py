"""Data integrity of DetailCLIP's inputs (issue #10): a verified feature cache, `--cache-dir none`,
correct pixels from 16-bit, palette and alpha images, decompression bombs and garbage checkpoint or
weights files. Oracles: uncached extraction, numpy arithmetic, a seeded model's own weights."""

import hashlib
import itertools
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli import main
from detailclip.backbones import BackboneError, load_backbone
from detailclip.checkpoint import save_checkpoint
from detailclip.features import extract_features
from detailclip.fusion import build_fusion
from detailclip.images import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, ImageError, decode_image
from tests.conftest import run_cli

TINY = "tiny-clip-vit-p8-32"
SEED = 3


@pytest.fixture(scope="module")
def backbone():
    return load_backbone(TINY, "none", device="cpu", seed=SEED)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(40, 56), (40, 56), (33, 47)]):
        paths.append(tmp_path / "images" / f"img{i}.png")
        paths[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A fusion checkpoint on the tiny random backbone (cc, k = 3)."""
    path = tmp_path_factory.mktemp("ckpt") / "fusion.pt"
    torch.manual_seed(0)
    save_checkpoint(path, build_fusion("tiny", 32), {"backbone": TINY, "pretrained": "none", "backbone_seed": SEED,
                                                     "image_size": None, "scheme": "cc", "k": 3, "untrained": True})
    return path


def extract(backbone, paths, cache=None, k=3, **options):
    """One image per batch, so that every image is encoded alone and results compare bit for bit."""
    return extract_features(backbone, paths, scheme="cc", k=k, cache_dir=cache, batch_size=1, progress=False,
                            **options)


def assert_identical(items, reference):
    assert len(items) == len(reference)
    for a, b in zip(items, reference):
        assert a.data.dtype == b.data.dtype == np.float16
        assert np.array_equal(a.data, b.data) and np.array_equal(a.level_ids, b.level_ids)


def png(array: np.ndarray, colour_type: int) -> bytes:
    """A minimal PNG writer: 8- or 16-bit samples (by dtype), filter 0 on every row."""
    height, width = array.shape[:2]
    depth = 16 if array.dtype == np.uint16 else 8
    rows = array.astype(">u2" if depth == 16 else "u1").reshape(height, -1)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    return png_chunks(width, height, depth, colour_type, zlib.compress(raw))


def png_chunks(width, height, depth, colour_type, idat: bytes) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# 1. The verified feature cache


def _rewrite_header(path: Path, change) -> None:
    head, _, payload = path.read_bytes().partition(b"\n")
    header = json.loads(head)
    payload = change(header, payload)
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)


def _to_float32(header, payload):
    header["dtype"] = "float32"
    return np.frombuffer(payload, np.float16).astype(np.float32).tobytes()


def _relevel(header, payload):
    header["levels"] = [0] * len(header["levels"])
    return payload


CORRUPTIONS = {
    "empty": lambda path, other: path.write_bytes(b""),
    "truncated": lambda path, other: path.write_bytes(path.read_bytes()[:-64]),
    "garbage": lambda path, other: _rewrite_header(
        path, lambda header, payload: np.random.default_rng(1).bytes(len(payload))),
    "no header": lambda path, other: path.write_bytes(path.read_bytes().partition(b"\n")[2]),
    "wrong levels": lambda path, other: _rewrite_header(path, _relevel),
    "wrong dtype": lambda path, other: _rewrite_header(path, _to_float32),
    "another image's entry": lambda path, other: path.write_bytes(other.read_bytes()),
}


@pytest.mark.parametrize("kind", [*CORRUPTIONS, "another key's entry"])
def test_bad_cache_entry_is_extracted_again_with_one_warning(backbone, images, tmp_path, capsys, kind):
    cache = tmp_path / "cache"
    extract(backbone, images, cache)
    fresh = extract(backbone, images)
    entries = {path: next(cache.glob(f"*/{hashlib.sha256(path.read_bytes()).hexdigest()}.*")) for path in images}
    target = entries[images[0]]
    if kind == "another key's entry":  # same image, other k: a self-consistent entry of another shape
        extract(backbone, images[:1], cache, k=4)
        other = next(p for p in cache.glob(f"*/{target.name}") if p != target)
        target.write_bytes(other.read_bytes())
    else:
        CORRUPTIONS[kind](target, entries[images[2]])
    capsys.readouterr()
    assert_identical(extract(backbone, images, cache), fresh)
    warning = one_line(capsys.readouterr().err)
    assert str(target) in warning and warning.startswith("warning:")
    assert_identical(extract(backbone, images, cache), fresh)  # repaired: read back silently
    assert capsys.readouterr().err == ""


def test_cache_keys_keep_k_seed_antialias_and_input_size_apart(images, tmp_path, capsys):
    cache = tmp_path / "cache"
    backbones = {(seed, size): load_backbone(TINY, "none", device="cpu", seed=seed, image_size=size)
                 for seed, size in itertools.product((3, 4), (32, 48))}
    configs = list(itertools.product((3, 4), (3, 4), (True, False), (32, 48)))
    expected = {}
    for k, seed, antialias, size in configs:
        expected[k, seed, antialias, size] = extract(backbones[seed, size], images, k=k, antialias=antialias)
        cached = extract(backbones[seed, size], images, cache, k=k, antialias=antialias)
        assert_identical(cached, expected[k, seed, antialias, size])
    for k, seed, antialias, size in configs:  # now every entry is a cache hit
        cached = extract(backbones[seed, size], images, cache, k=k, antialias=antialias)
        assert_identical(cached, expected[k, seed, antialias, size])
    assert len(list(cache.iterdir())) == len(configs) and capsys.readouterr().err == ""


# 2. --cache-dir none


def test_cache_dir_none_means_no_cache_in_encode_and_train(images, checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    encode = ["encode", "--checkpoint", str(checkpoint), "--images", str(images[0].parent), "--quiet"]
    assert main([*encode, "--out", "none.npz", "--cache-dir", "none"]) == 0
    assert main([*encode, "--out", "cached.npz", "--cache-dir", "cache"]) == 0
    assert np.array_equal(np.load("none.npz")["vectors"], np.load("cached.npz")["vectors"])
    (tmp_path / "classes.txt").write_text("red cube\nblue sphere\n")
    train = ["train", "--data", str(images[0].parent), "--classes", "classes.txt", "--backbone", TINY,
             "--pretrained", "none", "--size", "tiny", "--cover-k", "3", "--templates", "short", "--epochs", "1",
             "--batch-size", "2", "--quiet", "--out", "run/m.pt", "--cache-dir", "None"]
    assert main(train) == 0 and (tmp_path / "run" / "m.pt").is_file()
    capsys.readouterr()
    assert not (tmp_path / "none").exists() and not (tmp_path / "None").exists()
    assert not (tmp_path / "run" / "feature_cache").exists() and (tmp_path / "cache").is_dir()


# 3. Correct pixels from any mode


def test_16_bit_greyscale_is_scaled_not_clipped():
    values = np.random.default_rng(0).integers(0, 65536, (24, 30), dtype=np.uint16)
    values[0, :4] = [0, 128, 129, 65535]  # round(v / 257) edges: 0, 0, 1, 255
    for data in (png(values, 0), _saved(Image.fromarray(values), "PNG")):
        image = decode_image(data).permute(1, 2, 0).numpy()
        expected = np.round(values / 257.0).astype(np.uint8)
        assert np.array_equal(image, np.repeat(expected[..., None], 3, axis=2))
    assert list(image[0, :4, 0]) == [0, 0, 1, 255]


def test_16_bit_colour_keeps_the_high_byte_and_drops_alpha():
    rng = np.random.default_rng(1)
    for channels, colour_type in ((3, 2), (4, 6)):
        values = rng.integers(0, 65536, (12, 10, channels), dtype=np.uint16)
        image = decode_image(png(values, colour_type)).permute(1, 2, 0).numpy().astype(int)
        assert np.array_equal(image, values[..., :3] >> 8)  # what Pillow gives for 16-bit colour
        assert np.abs(image - np.round(values[..., :3] / 257.0)).max() <= 1
    grey_alpha = rng.integers(0, 65536, (12, 10, 2), dtype=np.uint16)
    image = decode_image(png(grey_alpha, 4)).permute(1, 2, 0).numpy()
    assert np.array_equal(image, np.repeat((grey_alpha[..., :1] >> 8).astype(np.uint8), 3, axis=2))


def test_palette_bilevel_and_alpha_modes():
    rng = np.random.default_rng(2)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    indices = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    paletted = Image.fromarray(indices, "P")
    paletted.putpalette(palette.tobytes())
    rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    grey_alpha = rng.integers(0, 256, (9, 11, 2), dtype=np.uint8)
    bits = rng.random((9, 11)) > 0.5
    cases = [
        (_saved(paletted, "PNG"), palette[indices]),
        (_saved(paletted, "PNG", transparency=0), palette[indices]),
        (_saved(Image.fromarray(rgba, "RGBA"), "PNG"), rgba[..., :3]),
        (_saved(Image.fromarray(grey_alpha, "LA"), "PNG"), np.repeat(grey_alpha[..., :1], 3, axis=2)),
        (_saved(Image.fromarray(bits), "PNG"), np.repeat(bits[..., None] * np.uint8(255), 3, axis=2)),
    ]
    for data, expected in cases:
        assert np.array_equal(decode_image(data).permute(1, 2, 0).numpy(), expected)


def test_32_bit_integer_and_float_images():
    values = np.random.default_rng(3).integers(0, 65536, (8, 9)).astype(np.int32)
    image = decode_image(_saved(Image.fromarray(values, "I"), "TIFF")).permute(1, 2, 0).numpy()
    assert np.array_equal(image[..., 0], np.round(values / 257.0).astype(np.uint8))
    values[0, 0] = 70000
    with pytest.raises(ImageError, match="outside 0..65535"):
        decode_image(_saved(Image.fromarray(values, "I"), "TIFF"), "big.tif")
    with pytest.raises(ImageError, match="floating-point"):
        decode_image(_saved(Image.fromarray(np.ones((4, 4), np.float32)), "TIFF"), "float.tif")


def _saved(image: Image.Image, format: str, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


# 4. Decompression bombs


def bomb(path: Path) -> Path:
    """A 100 byte PNG whose header declares 100000 x 100000 RGB pixels."""
    path.write_bytes(png_chunks(100_000, 100_000, 8, 2, zlib.compress(b"\0" * 64)))
    return path


def test_oversized_image_is_refused_from_its_header(backbone, images, tmp_path):
    path = bomb(tmp_path / "images" / "bomb.png")
    with pytest.raises(ImageError) as error:
        extract(backbone, [*images, path])
    message = one_line(str(error.value))
    assert "100000x100000" in message and str(DEFAULT_MAX_PIXELS) in message and MAX_PIXELS_ENV in message
    assert str(path) in message


def test_pixel_limit_parameter_and_environment(monkeypatch):
    data = _saved(Image.new("RGB", (20, 10)), "PNG")
    assert decode_image(data, max_pixels=200).shape == (3, 10, 20)
    with pytest.raises(ImageError, match="20x10 = 200 pixels, over the limit of 199"):
        decode_image(data, max_pixels=199)
    monkeypatch.setenv(MAX_PIXELS_ENV, "199")
    with pytest.raises(ImageError, match="limit of 199"):
        decode_image(data)
    monkeypatch.setenv(MAX_PIXELS_ENV, "20000000000")
    assert decode_image(data).shape == (3, 10, 20)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ImageError, match=MAX_PIXELS_ENV):
        decode_image(data)


def test_cli_encode_refuses_a_bomb_in_one_line(images, checkpoint, tmp_path):
    bomb(images[0].parent / "bomb.png")
    proc = run_cli("encode", "--checkpoint", str(checkpoint), "--images", str(images[0].parent),
                   "--out", str(tmp_path / "v.npz"), "--quiet", check=False)
    assert proc.returncode != 0 and not (tmp_path / "v.npz").exists()
    assert "100000x100000" in one_line(proc.stderr) and MAX_PIXELS_ENV in proc.stderr


# 5. Garbage checkpoint and weights files


class Payload:
    """Unpickling this would create the file `marker` (pickle calls open(marker, "w"))."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a torch file")


GARBAGE = {
    "random bytes": lambda path: path.write_bytes(np.random.default_rng(0).bytes(4096)),
    "empty": lambda path: path.write_bytes(b""),
    "text": lambda path: path.write_text("weights = [1, 2, 3]\n"),
    "zip, not torch": _zip,
    "pickled object": lambda path: torch.save({"format": "detailclip-fusion/1", "x": Payload(path.with_name("RAN"))},
                                              path),
    "torch list": lambda path: torch.save([torch.zeros(2)], path),
}


@pytest.mark.parametrize("kind", GARBAGE)
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_garbage_checkpoint_or_weights_is_one_line(images, tmp_path, capsys, kind, suffix):
    path = tmp_path / f"garbage{suffix}"
    GARBAGE[kind](path)
    with pytest.raises(BackboneError) as error:
        load_backbone(TINY, str(path), device="cpu")
    messages = [one_line(str(error.value))]
    (tmp_path / "classes.txt").write_text("red cube\n")
    folder = str(images[0].parent)
    runs = [["encode", "--checkpoint", str(path), "--images", folder, "--out", str(tmp_path / "v.npz")],
            ["train", "--data", folder, "--classes", str(tmp_path / "classes.txt"), "--backbone", TINY,
             "--pretrained", str(path), "--out", str(tmp_path / "m.pt"), "--quiet"]]
    for args in runs:
        assert main(args) != 0
        messages.append(one_line(capsys.readouterr().err))
    assert all(f"{path} is not a" in m and "weights_only" not in m for m in messages), messages
    assert "checkpoint" in messages[1] and "weights file" in messages[2]
    assert not (tmp_path / "RAN").exists() and not (tmp_path / "v.npz").exists()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_weights_files_still_load(backbone, tmp_path, suffix):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in backbone.model.state_dict().items()}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        save_file(state, path)
    loaded = load_backbone(TINY, str(path), device="cpu", seed=99)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded.encode_images(pixels), backbone.encode_images(pixels))

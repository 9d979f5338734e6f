"""A user's orthophoto as the ground of aerial scenes (`render --family aerial --ground IMAGE`).

The image (any format Pillow reads: PNG, JPEG, TIFF, ...) is checked before anything is written,
then copied byte for byte into the split as ROOT/assets/ground/<content hash><suffix>; the split's
meta records it (`GroundImage`: stored path, SHA-256, size, gsd), so a split resumes and
re-renders without the original file.

Each scene takes a square crop of it by its own seed (`sample_crop`): the ground the scene's
plane spans, 2 * half_extent_m metres, at the image's gsd (`--ground-gsd`, metres per image
pixel; default the scene's own gsd, one image pixel per rendered pixel at nadir) at a random
position, turned by a random multiple of 90 degrees. An image too small for the crop is tiled
(repeated): pixel (x, y) of the crop box is image pixel (x mod width, y mod height). The scene
JSON's `ground` records the crop (`box_px`, `rotation_deg`, `sha256`, `file`), so one scene
re-renders alone from its JSON and the split's copy of the image.

The image has no land covers: objects stand anywhere (cover "any", `aerial.ANY`), ships on
land included. Its colours are taken as sRGB and become the ground's albedo in linear RGB, so
the scene's sun and sky light it again (its own shadows and shading stay in it).
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from infra.atomic import write_bytes
from infra.errors import ToolkitError
from infra.paths import inside

MIN_SIDE = 64  # pixels: a smaller image is refused
STORE = "assets/ground"  # ROOT/assets/ground/<hash16><suffix>: the split's copy of the image
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif"}
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class GroundError(ToolkitError, ValueError):
    """A ground image that cannot be used, or a split's copy of it that is missing or altered (one line)."""


@dataclass(frozen=True)
class GroundImage:
    """A split's ground image as its meta records it."""

    file: str  # stored copy, relative POSIX path from the split root
    sha256: str  # of the file's bytes
    width: int
    height: int
    gsd: float | None = None  # metres per image pixel; None: each scene's own gsd

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GroundImage:
        gsd = data.get("gsd")
        return cls(str(data["file"]), str(data["sha256"]), int(data["width"]), int(data["height"]),
                   None if gsd is None else float(gsd))  # fmt: skip


def _decode(path: Path) -> tuple[np.ndarray, str]:
    """(H, W, 3) uint8 RGB of the image at `path` (16-bit grey scaled to 8 bits), and its Pillow format."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            img.load()
            fmt = img.format or ""
            if img.mode in SIXTEEN_BIT:
                grey = np.clip(np.asarray(img, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
                return np.repeat(grey[..., None], 3, -1), fmt
            return np.asarray(img.convert("RGB")), fmt


def read_ground(path: str | Path, gsd: float | None = None) -> GroundImage:
    """The checked `--ground` image: a readable image of at least MIN_SIDE pixels a side; GroundError otherwise."""
    path = Path(path)
    if not path.exists():
        raise GroundError(f"--ground {path}: no such file")
    if not path.is_file():
        raise GroundError(f"--ground {path}: not a file")
    try:
        data = path.read_bytes()
        pixels, fmt = _decode(path)
    except OSError as e:
        raise GroundError(f"--ground {path}: not an image Pillow can read ({e.strerror or e})") from None
    except Exception as e:  # Pillow raises many kinds (SyntaxError, DecompressionBombError, ValueError, ...)
        raise GroundError(f"--ground {path}: not an image Pillow can read ({type(e).__name__}: {e})") from None
    height, width = pixels.shape[:2]
    if min(width, height) < MIN_SIDE:
        raise GroundError(f"--ground {path}: {width}x{height} px is too small (at least {MIN_SIDE} px a side)")
    digest = hashlib.sha256(data).hexdigest()
    suffix = SUFFIXES.get(fmt, f".{fmt.lower()}" if fmt.isalnum() else ".img")
    return GroundImage(f"{STORE}/{digest[:16]}{suffix}", digest, width, height, gsd)


def _stored_matches(path: Path, sha256: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def stored_path(ground: GroundImage, root: str | Path) -> Path:
    """The split's copy of the image (a path that must stay inside `root`)."""
    return inside(root, *ground.file.split("/"))


def check_stored(ground: GroundImage, root: str | Path) -> None:
    """GroundError unless the split at `root` holds its ground image, unaltered."""
    if not _stored_matches(stored_path(ground, root), ground.sha256):
        raise GroundError(f"{root}: the split's ground image {ground.file} is missing or altered "
                          f"(sha256 {ground.sha256[:16]}...); render again with --ground and the original image")  # fmt: skip


def store_ground(source: str | Path, ground: GroundImage, root: str | Path) -> None:
    """Copy `source` to the split at `root` unless an unaltered copy is there (atomically)."""
    target = stored_path(ground, root)
    if _stored_matches(target, ground.sha256):
        return
    data = Path(source).read_bytes()
    if hashlib.sha256(data).hexdigest() != ground.sha256:
        raise GroundError(f"--ground {source}: the file changed since it was checked; run again")
    write_bytes(target, data, root=root)


def sample_crop(rng: np.random.Generator, ground: GroundImage, half_extent: float, gsd: float) -> dict:
    """A scene's ground: the square crop of the image that the plane of `half_extent` metres spans (three draws
    from the scene's generator: its left, its top, its turn)."""
    image_gsd = ground.gsd if ground.gsd is not None else gsd
    side = 2 * half_extent / image_gsd

    def start(size: int) -> float:  # inside the image when it fits, anywhere on the tiling otherwise
        return float(rng.uniform(0.0, size - side)) if side <= size else float(rng.uniform(0.0, size))

    x0, y0 = start(ground.width), start(ground.height)
    turns = int(rng.integers(4))
    return {
        "kind": "image", "half_extent_m": half_extent, "file": ground.file, "sha256": ground.sha256,
        "image_size": [ground.width, ground.height], "gsd_m": image_gsd, "box_px": [x0, y0, x0 + side, y0 + side],
        "rotation_deg": 90 * turns, "tiled": side > ground.width or side > ground.height,
    }  # fmt: skip


def image_pixel(layout: dict, points: np.ndarray) -> np.ndarray:
    """Image pixel coordinates (x, y; continuous, pixel centres at .5, wrapped into the image) of ground
    `points` (..., 2) in metres, for an image layout."""
    r = layout["half_extent_m"]
    points = np.asarray(points, dtype=float)
    u, v = (points[..., 0] + r) / (2 * r), (r - points[..., 1]) / (2 * r)  # texture: u east, v south
    for _ in range(layout["rotation_deg"] // 90 % 4):  # undo np.rot90: out(u, v) = in(1 - v, u)
        u, v = 1 - v, u
    x0, y0, x1, _ = layout["box_px"]
    width, height = layout["image_size"]
    return np.stack([(x0 + u * (x1 - x0)) % width, (y0 + v * (x1 - x0)) % height], -1)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.float32) / np.float32(255)
    return np.where(v <= 0.04045, v / np.float32(12.92), ((v + np.float32(0.055)) / np.float32(1.055)) ** np.float32(2.4))


def texture(layout: dict, pixels: np.ndarray, side: int) -> np.ndarray:
    """The layout's crop of `pixels` ((H, W, 3) uint8 sRGB) as a (side, side, 3) linear-RGB float32 image, row 0
    north: the crop box (tiled where it leaves the image) resampled bilinearly, then turned rotation_deg
    counter-clockwise. A crop far larger than `side` is first thinned to about `side` pixels a side (every
    step-th pixel), so memory stays that of the texture."""
    from PIL import Image

    height, width = pixels.shape[:2]
    x0, y0, x1, _ = layout["box_px"]
    crop = x1 - x0
    step = max(1, int(crop // side))

    def axis(lo: float, size: int) -> tuple[np.ndarray, float]:
        first = math.floor(lo)
        count = math.ceil((lo + crop - first) / step)
        return (first + step * np.arange(count) + step // 2) % size, (lo - first) / step

    cols, bx = axis(x0, width)
    rows, by = axis(y0, height)
    window = srgb_to_linear(pixels[rows[:, None], cols[None, :]])
    box = (bx, by, bx + crop / step, by + crop / step)
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(window[..., k])).resize((side, side), Image.Resampling.BILINEAR, box=box))
                for k in range(3)]  # fmt: skip
    rgb = np.rot90(np.stack(channels, -1), layout["rotation_deg"] // 90 % 4)
    return np.ascontiguousarray(np.clip(rgb, 0, 1), dtype=np.float32)


@functools.lru_cache(maxsize=1)
def load_pixels(path: str, sha256: str) -> np.ndarray:
    """The (H, W, 3) uint8 pixels of a split's ground image, after checking its content hash (GroundError)."""
    data = Path(path).read_bytes() if Path(path).is_file() else None
    if data is None or hashlib.sha256(data).hexdigest() != sha256:
        raise GroundError(f"ground image {path} is missing or altered (sha256 {sha256[:16]}...)")
    pixels = _decode(Path(path))[0]
    pixels.flags.writeable = False
    return pixels

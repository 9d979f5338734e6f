"""Image files: listing a folder, content hashes, decoding to uint8 tensors."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from infra.errors import ToolkitError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MAX_PIXELS_ENV = "DETAILCLIP_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own warning threshold (about 0.25 GiB of RGB)


class ImageError(ToolkitError, ValueError):
    """A missing, unreadable, empty or oversized image input."""


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under `folder` (by suffix), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"no image folder {folder}")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and ".tmp-" not in p.name)


def content_hash(data: bytes) -> str:
    """SHA-256 hex digest of an image file's bytes (the feature cache key)."""
    return hashlib.sha256(data).hexdigest()


def read_bytes(path) -> bytes:
    """The bytes of an image file, or of an archive member (anything with its own read_bytes(): infra.archive.TarMember)."""
    try:
        return (path if hasattr(path, "read_bytes") else Path(path)).read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read image {path}: {e.strerror or e}") from None


def openable(path):
    """What Pillow opens for `path`: a file name as it is, an archive member as its bytes."""
    return path if isinstance(path, (str, os.PathLike)) else io.BytesIO(path.read_bytes())


def declared_size(path) -> tuple[int, int]:
    """(height, width) from an image's header (a file or an archive member), nothing decoded; (0, 0) when it cannot
    be read (decoding says why)."""
    try:
        with _pillow().open(openable(path)) as image:
            return image.height, image.width
    except (OSError, ValueError):
        return 0, 0


def max_image_pixels(limit: int | None = None) -> int:
    """`limit`, else the DETAILCLIP_MAX_IMAGE_PIXELS environment variable, else DEFAULT_MAX_PIXELS."""
    if limit is not None:
        return int(limit)
    value = os.environ.get(MAX_PIXELS_ENV, str(DEFAULT_MAX_PIXELS))
    if not value.isdigit():
        raise ImageError(f"{MAX_PIXELS_ENV} must be a number of pixels, got {value!r}")
    return int(value)


def decode_image(data: bytes, path: str | Path = "<bytes>", max_pixels: int | None = None):
    """Decode image bytes to a uint8 RGB tensor [3, H, W].

    The size declared in the header is checked against `max_pixels` (see max_image_pixels) before
    anything is decoded. 16-bit greyscale is scaled to 8 bits as round(v / 257); Pillow reads
    16-bit colour PNGs as their high byte (v >> 8, within one level of that). Palettes are
    expanded and alpha is dropped (as open_clip's preprocessing does), not composited.
    """
    import torch
    from PIL import UnidentifiedImageError

    limit = max_image_pixels(max_pixels)
    try:
        with _pillow().open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > limit:
                raise ImageError(f"image {path} is {width}x{height} = {width * height} pixels, over the limit of "
                                 f"{limit} (set {MAX_PIXELS_ENV} to raise it)")
            array = _rgb_array(image)
    except UnidentifiedImageError:
        raise ImageError(f"cannot decode image {path}: unknown or corrupt image format") from None
    except ImageError:
        raise
    except (OSError, ValueError) as e:
        raise ImageError(f"cannot decode image {path}: {e}") from None
    return torch.from_numpy(array).permute(2, 0, 1)


def _pillow():
    """PIL.Image without its own decompression-bomb check: the size check is ours, with our limit and one-line message."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    return Image


def _rgb_array(image):
    """uint8 [H, W, 3] of an open PIL image; integer greyscale (16 or 32 bits) scaled from 0..65535."""
    import numpy as np

    if image.mode == "F":
        raise ValueError("floating-point samples are not supported")
    if not image.mode.startswith("I"):
        return np.array(image if image.mode == "RGB" else image.convert("RGB"))  # convert would copy an RGB image
    values = np.asarray(image, dtype=np.int64)
    if values.min() < 0 or values.max() > 65535:
        raise ValueError(f"{image.mode} samples outside 0..65535")
    grey = ((values + 128) // 257).astype(np.uint8)  # round(v / 257): v / 257 is never exactly x.5
    return np.repeat(grey[..., None], 3, axis=2)

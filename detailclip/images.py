"""Image files: listing a folder, content hashes, decoding to uint8 tensors."""

from __future__ import annotations

import hashlib
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ImageError(ValueError):
    """A missing, unreadable or empty image input."""


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


def read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read image {path}: {e.strerror or e}") from None


def decode_image(data: bytes, path: str | Path = "<bytes>"):
    """Decode image bytes to a uint8 RGB tensor [3, H, W]."""
    import io

    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.array(image.convert("RGB"))
    except UnidentifiedImageError:
        raise ImageError(f"cannot decode image {path}: unknown or corrupt image format") from None
    except (OSError, ValueError) as e:
        raise ImageError(f"cannot decode image {path}: {e}") from None
    return torch.from_numpy(array).permute(2, 0, 1)

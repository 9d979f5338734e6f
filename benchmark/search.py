"""Text search over an image folder: an index file of image vectors from a bench method, scored exactly.

Index file (.npz, written atomically): `vectors` float32 [M, D], `counts` [N] (vectors per image, as in
ImageIndex) and `header`, a JSON string: format, backbone, pretrained, pretrained_id, seed, image_size,
method, method_settings, root (the indexed folder), images (path relative to root, sha256 of its
bytes) and, for an auto cover (--cover-k auto), cover_k: its rule and each image's k in images' order.
Features come from the feature cache, so an interrupted `index` resumes where it stopped.
All scoring goes through `search_index`, the one place an approximate index would replace.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clevr_ds.schema import ListOf, problem
from infra.atomic import npz_writer, write_together
from infra.cluster import RayCluster
from infra.errors import ToolkitError, first_line
from infra.jsonio import parse_json
from infra.paths import UnsafePathError, inside

from .context import BenchContext
from .index import ImageIndex
from .sources import Source, SourceImage, image_size

INDEX_FORMAT = 1
THUMB = 128


@dataclass(frozen=True)
class SearchIndex:
    index: ImageIndex
    header: dict

    @property
    def paths(self) -> list[Path]:
        return [Path(self.header["root"]) / image["path"] for image in self.header["images"]]


def folder_source(root: Path | str) -> tuple[Source, list[str]]:
    """Every image under `root` (sorted, recursive) as a Source without classes, and each image's sha256."""
    from detailclip.images import ImageError, content_hash, list_images, read_bytes

    root = Path(root).resolve()
    paths = list_images(root)
    if not paths:
        raise ImageError(f"no images in {root}")
    hashes = [content_hash(read_bytes(p)) for p in paths]
    images = tuple(SourceImage(p, p.relative_to(root).as_posix(), *image_size(p), ()) for p in paths)
    digest = hashlib.sha256("".join(f"{im.name}\t{h}\n" for im, h in zip(images, hashes)).encode()).hexdigest()
    return Source("folder", root.name, (), images, digest, (), len(images)), hashes


def build_index(images_dir: Path | str, out: Path | str, method: str = "detailclip", checkpoint: Path | None = None,
                backbone: str | None = None, pretrained: str | None = None, seed: int | None = None,
                cover_k: int | None = None, cache_dir: Path | None = None, batch_size: int = 4,
                device: str | None = None, progress: bool = True, cluster: RayCluster | None = None) -> SearchIndex:  # fmt: skip
    """Encode every image under `images_dir` with a bench method (by name) and write the index file `out`."""
    from detailclip.backbones import pretrained_id

    from .methods import create_method
    from .runner import resolve_backbone

    source, hashes = folder_source(images_dir)
    chosen = resolve_backbone(checkpoint, backbone, pretrained, seed, cover_k)
    ctx = BenchContext.on_backbone(source, chosen, device=device, checkpoint=checkpoint, cache_dir=cache_dir,
                                   batch_size=batch_size, progress=progress, cluster=cluster)  # fmt: skip
    chosen_method = create_method(method)
    encoded = chosen_method.encode(ctx)
    header = {
        "format": INDEX_FORMAT, "backbone": chosen["backbone"], "pretrained": chosen["pretrained"],
        "pretrained_id": pretrained_id(chosen["pretrained"]), "seed": chosen["seed"],
        "image_size": chosen["image_size"], "method": method, "method_settings": chosen_method.settings(ctx),
        "root": str(Path(images_dir).resolve()),
        "images": [{"path": image.name, "sha256": h} for image, h in zip(source.images, hashes)],
        **({"cover_k": encoded.cover_k} if encoded.cover_k else {}),
    }  # fmt: skip
    result = SearchIndex(ImageIndex(encoded.index.vectors.float().cpu(), encoded.index.counts.cpu()), header)
    arrays = {"vectors": result.index.vectors.numpy(), "counts": result.index.counts.numpy(), "header": json.dumps(header)}
    write_together({out: npz_writer(arrays)})
    return result


class IndexFileError(ToolkitError, ValueError):
    """A missing, corrupt or foreign index file."""


INDEX_HEADER = {"format": int, "backbone": str, "pretrained": str, "seed": int, "image_size": (int, type(None)),
                "root": str, "images": ListOf({"path": str, "sha256": str})}  # fmt: skip


def load_index(path: Path | str) -> SearchIndex:
    """An index file written by `build_index`, its header bounded and typed and its image paths inside
    its root; IndexFileError with one line otherwise."""
    try:
        with np.load(path, allow_pickle=False) as z:
            header = parse_json(str(z["header"]), path, "index header", error=IndexFileError)
            index = ImageIndex(torch.from_numpy(z["vectors"]).float(), torch.from_numpy(z["counts"]).long())
    except FileNotFoundError:
        raise IndexFileError(f"no index file {path}") from None
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as e:
        if isinstance(e, IndexFileError):
            raise
        raise IndexFileError(f"{path} is not an index file: {first_line(e)}") from None
    found = problem(header, INDEX_HEADER)
    if found or header["format"] != INDEX_FORMAT or len(header["images"]) != index.n_images:
        raise IndexFileError(f"{path} is not an index file of format {INDEX_FORMAT}" + (f" ({found})" if found else ""))
    for image in header["images"]:
        try:
            inside(header["root"], image["path"], source=path)
        except UnsafePathError as e:
            raise IndexFileError(str(e)) from None
    return SearchIndex(index, header)


def query_vectors(header: dict, queries: list[str], templates: str = "plain",
                  device: str | None = None) -> torch.Tensor:  # fmt: skip
    """Text embeddings [Q, D] of the queries from the text tower of the index's backbone."""
    from detailclip.backbones import load_backbone

    backbone = load_backbone(header["backbone"], header["pretrained"], device=device, seed=header["seed"],
                             image_size=header["image_size"])  # fmt: skip
    return backbone.class_embeddings(queries, templates).float().cpu()


def search_index(index: ImageIndex, text_vectors: torch.Tensor, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, image numbers), each [Q, min(top, N)], best first: exact cosine search (max over an image's
    vectors), ties in image order."""
    if text_vectors.shape[1] != index.vectors.shape[1]:
        raise IndexFileError(f"the index holds vectors of dimension {index.vectors.shape[1]}, its backbone's text "
                             f"vectors have {text_vectors.shape[1]}")  # fmt: skip
    scores = index.score(text_vectors)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :top]
    return scores.gather(1, order), order


def contact_sheet(paths: list[Path], scores: list[float], out: Path | str, thumb: int = THUMB) -> Path:
    """One row of `thumb` px squares (image fitted and centred, rank and score written on it), saved to `out`."""
    from PIL import Image, ImageDraw

    sheet = Image.new("RGB", (thumb * len(paths), thumb), "black")
    draw = ImageDraw.Draw(sheet)
    for i, (path, score) in enumerate(zip(paths, scores)):
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((thumb, thumb))
        sheet.paste(image, (i * thumb + (thumb - image.width) // 2, (thumb - image.height) // 2))
        draw.text((i * thumb + 3, 2), f"{i + 1}  {score:.3f}", fill="white", stroke_width=1, stroke_fill="black")
    write_together({out: lambda tmp: sheet.save(tmp, format="PNG")})
    return Path(out)

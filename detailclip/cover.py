"""Patch schemes: Complete Cover (cc@k), a plain grid, ground-truth object crops and the whole image.

Complete Cover (arXiv 2208.14649), as stated in the project's method notes:
the image is resized to H' x W' (height and width rounded up to multiples of k), cells are
c = H'/k by W'/k, level n = 1..k uses windows of k-n+1 cells starting at 0, t, 2t, ... with
t = s - (s - c)/c, the last window of a row clamped to end at the border; levels that yield the
same number of windows collapse onto the last (smallest) one.

Choice where the notes are silent: for cells so small (a few pixels) that this step would add
windows, the level keeps the window count it has on large images and spreads its windows evenly,
so the per-level counts never depend on the image size.

k = "auto" (`AUTO_K`) follows the image: k = ceil(longest side / backbone input size), so the finest
windows stay at about the backbone's input size (the notes' k = 10 at 2240 px on a 224 px CLIP) and
the window count grows as (side / input size)^2.

"cc-fine" adds magnified windows to a cover (issue #28): cc@k and, in its finest level, the finest
windows of cc@ceil(1.5 k), each 1/1.5 of the finest side, so an object a few pixels wide reaches the
backbone 1.5 times larger. At 2240 px on the 112 px backbone (k = 20): 661 + 900 windows. Its
windows begin with cc@k's, in their order (`LEADING_SCHEME`), so one extraction serves a teacher that
scores all of them and a student that reads the cover alone (`window_count`).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

Box = tuple[int, int, int, int]

SCHEMES = ("cc", "cc-fine", "grid", "objects", "whole")
COVER_SCHEMES = ("cc", "cc-fine", "grid")  # schemes whose windows follow the cover's k
LEADING_SCHEME = {"cc-fine": "cc"}  # a scheme whose windows begin with another's, same boxes, levels and order
AUTO_K = "auto"
AUTO_K_RULE = "k = ceil(longest image side / backbone input size)"


def parse_cover_k(value, max_k: int | None = None) -> int | str:
    """A cover's k: a positive integer (at most `max_k`) or AUTO_K; ValueError saying so otherwise."""
    text = str(value).strip().lower()
    if text == AUTO_K:
        return AUTO_K
    if not text.isdigit() or int(text) < 1 or (max_k is not None and int(text) > max_k):
        upto = f" up to {max_k}" if max_k is not None else ""
        raise ValueError(f"k must be a positive integer{upto} or {AUTO_K}, got {value!r}")
    return int(text)


def auto_k(height: int, width: int, input_size: int) -> int:
    """The k of an auto cover: the finest windows (about side / k px) no wider than the backbone's input size."""
    _check_positive(height=height, width=width, input_size=input_size)
    return -(-max(height, width) // input_size)


def image_k(k: int | str, height: int, width: int, input_size: int) -> int:
    """The k an image gets: `k` itself, or auto_k for AUTO_K."""
    return auto_k(height, width, input_size) if k == AUTO_K else int(k)


def auto_k_record(k: int | str, sizes: Iterable[tuple[int, int]], input_size: int) -> dict | None:
    """How an auto cover chose k, for run records and checkpoints: the rule, the backbone input size and
    each image's k (sizes: (height, width) per image, in order); None for a fixed k."""
    if k != AUTO_K:
        return None
    return {"rule": AUTO_K_RULE, "input_size": input_size, "per_image": [auto_k(h, w, input_size) for h, w in sizes]}


def rounded_size(height: int, width: int, k: int) -> tuple[int, int]:
    """Height and width rounded up to multiples of k (the frame Complete Cover boxes live in)."""
    _check_positive(height=height, width=width, k=k)
    return -(-height // k) * k, -(-width // k) * k


def windows_per_axis(k: int, cells: int) -> int:
    """Windows of `cells` cells along one axis of k cells, on a large image (exact, size-free)."""
    if cells == k:
        return 1
    if cells == 1:
        return k
    return k // cells + 1


def axis_starts(length: int, side: int, cell: int, count: int) -> list[int]:
    """Start offsets of `count` windows of `side` px on an axis of `length` px."""
    step = side - (side - cell) // cell
    starts = []
    start = 0
    while start + side < length:
        starts.append(start)
        start += step
    starts.append(length - side)
    if len(starts) != count:
        starts = [round(i * (length - side) / max(count - 1, 1)) for i in range(count)]
    return starts


def complete_cover_boxes(height: int, width: int, k: int) -> list[list[Box]]:
    """Complete Cover cc@k boxes (x0, y0, x1, y1) in the rounded H' x W' frame, whole image first."""
    rounded_h, rounded_w = rounded_size(height, width, k)
    cell_h, cell_w = rounded_h // k, rounded_w // k
    levels: list[list[Box]] = []
    for n in range(1, k + 1):
        cells = k - n + 1
        count = windows_per_axis(k, cells)
        side_h, side_w = cells * cell_h, cells * cell_w
        ys = axis_starts(rounded_h, side_h, cell_h, count)
        xs = axis_starts(rounded_w, side_w, cell_w, count)
        level = [(x, y, x + side_w, y + side_h) for y in ys for x in xs]
        if levels and len(levels[-1]) == len(level):
            levels[-1] = level
        else:
            levels.append(level)
    return levels


def magnified_k(k: int) -> int:
    """The k whose finest windows "cc-fine" adds to cc@k: ceil(1.5 k), windows 1/1.5 of cc@k's finest side."""
    return -(-3 * k // 2)


def grid_boxes(height: int, width: int, n: int) -> list[Box]:
    """An n x n grid of non-overlapping boxes tiling the image (edges rounded to pixels)."""
    _check_positive(height=height, width=width, n=n)
    ys = [round(i * height / n) for i in range(n + 1)]
    xs = [round(i * width / n) for i in range(n + 1)]
    return [(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(n) for i in range(n)]


def object_boxes(
    bboxes_xywh: Sequence[Sequence[float]],
    height: int,
    width: int,
    enlarge: float = 1.0,
    min_side: int = 8,
) -> list[Box]:
    """Object crops from [x, y, w, h] boxes: scaled by `enlarge` about their centre, at least
    `min_side` px per side, shifted (then clipped) to stay inside the image."""
    _check_positive(height=height, width=width)
    if enlarge <= 0:
        raise ValueError(f"enlarge must be positive, got {enlarge}")
    boxes = []
    for x, y, w, h in bboxes_xywh:
        side_w = min(max(w * enlarge, min_side), width)
        side_h = min(max(h * enlarge, min_side), height)
        x0 = min(max(x + w / 2 - side_w / 2, 0), width - side_w)
        y0 = min(max(y + h / 2 - side_h / 2, 0), height - side_h)
        boxes.append((round(x0), round(y0), round(x0 + side_w), round(y0 + side_h)))
    return boxes


def scheme_boxes(
    scheme: str,
    height: int,
    width: int,
    k: int = 10,
    object_bboxes: Sequence[Sequence[float]] | None = None,
    enlarge: float = 1.0,
    min_side: int = 8,
):
    """Boxes of a scheme in the original image's pixel frame, whole image first.

    Returns (boxes FloatTensor[P, 4] as x0, y0, x1, y1; levels LongTensor[P]); level 0 is the whole
    image. scheme: "cc" (Complete Cover at k), "cc-fine" (cc@k, its finest level joined by the finest
    windows of cc@magnified_k(k)), "grid" (k x k tiles), "objects" (one crop per bbox in
    `object_bboxes`), "whole" (the full image only).
    """
    import torch

    builder = _SCHEME_BUILDERS.get(scheme)
    if builder is None:
        raise ValueError(f"unknown patch scheme {scheme!r} (known: {', '.join(SCHEMES)})")
    levels = builder(height, width, k, object_bboxes, enlarge, min_side)
    boxes = [box for level in levels for box in level]
    level_ids = [i for i, level in enumerate(levels) for _ in level]
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(level_ids, dtype=torch.long)


def begins_with(scheme: str, leading: str) -> bool:
    """Whether `scheme`'s windows begin with all of `leading`'s, in order (a scheme begins with itself)."""
    return scheme == leading or LEADING_SCHEME.get(scheme) == leading


def window_count(scheme: str, height: int, width: int, k: int) -> int:
    """The number of windows (the whole image included) of a cover scheme on an image, at k."""
    if scheme not in COVER_SCHEMES:
        raise ValueError(f"{scheme!r} is not a cover scheme (known: {', '.join(COVER_SCHEMES)})")
    _check_positive(height=height, width=width, k=k)
    return sum(map(len, _SCHEME_BUILDERS[scheme](height, width, k, None, 1.0, 8)))


def _cc_levels(height, width, k, object_bboxes, enlarge, min_side) -> list[list[tuple[float, ...]]]:
    rounded_h, rounded_w = rounded_size(height, width, k)
    sx, sy = width / rounded_w, height / rounded_h
    return [[(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for x0, y0, x1, y1 in level]
            for level in complete_cover_boxes(height, width, k)]


def _cc_fine_levels(height, width, k, object_bboxes, enlarge, min_side) -> list[list[tuple[float, ...]]]:
    levels = _cc_levels(height, width, k, object_bboxes, enlarge, min_side)
    levels[-1] = levels[-1] + _cc_levels(height, width, magnified_k(k), object_bboxes, enlarge, min_side)[-1]
    return levels


def _grid_levels(height, width, k, object_bboxes, enlarge, min_side) -> list[list[Box]]:
    return [[(0, 0, width, height)], grid_boxes(height, width, k)]


def _object_levels(height, width, k, object_bboxes, enlarge, min_side) -> list[list[Box]]:
    if object_bboxes is None:
        raise ValueError("scheme 'objects' needs object_bboxes")
    crops = object_boxes(object_bboxes, height, width, enlarge, min_side)
    return [[(0, 0, width, height)]] + ([crops] if crops else [])


def _whole_levels(height, width, k, object_bboxes, enlarge, min_side) -> list[list[Box]]:
    return [[(0, 0, width, height)]]


_SCHEME_BUILDERS: dict[str, Callable] = {
    "cc": _cc_levels,
    "cc-fine": _cc_fine_levels,
    "grid": _grid_levels,
    "objects": _object_levels,
    "whole": _whole_levels,
}


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")

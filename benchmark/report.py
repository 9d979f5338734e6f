"""One self-contained HTML report of a results folder.

It holds, per split (by content hash): the leaderboard with 95% intervals and significance marks,
the mAP-per-bucket plot (inline SVG), mAP per class and method, and (with the split's data) for a
few queries of the smallest bucket (that has positives) the top-5 images of `clip`, `detailclip` and `cc-max` side by
side, the target objects boxed, so a reader sees the detail loss. Everything is inlined (images as
small JPEG data URIs); the page needs no network and no script besides one that counts the
images that decoded (`data-images-loaded` on <body>, for tests and for the curious).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from infra.paths import inside

from .leaderboard import build_table, figure, group_cells, groups, save_figure
from .results import SavedScores, ScoresError, load_runs, load_scores
from .sources import SourceSpec
from .verify import verify_runs

GALLERY_METHODS = ("clip", "detailclip", "cc-max")
THUMB_SIDE = 168
BOX_MIN_SIDE = 10  # a boxed object is drawn at least this large on the thumbnail
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
td.ns{color:#888}caption{text-align:left;font-size:13px;color:#444;padding-bottom:4px}
.gallery{display:grid;grid-template-columns:110px repeat(5,auto);gap:6px;align-items:center;margin-bottom:1.5em}
.gallery figure{margin:0;font-size:11px;text-align:center}.gallery img{display:block;border:3px solid #ccc}
.gallery img.hit{border-color:#2a2}.gallery img.miss{border-color:#c33}
"""
COUNT_IMAGES = """<script>
const imgs=[...document.images];const mark=()=>{document.body.dataset.imagesLoaded=
imgs.filter(i=>i.complete&&i.naturalWidth>0).length};imgs.forEach(i=>i.addEventListener('load',mark));mark();
</script>"""


def _data_uri(image, fmt: str = "JPEG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=85)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def thumbnail(path: Path, boxes: list[list[float]], side: int = THUMB_SIDE) -> str:
    """The image (a file or an archive member) at `side` px (longer side) with `boxes` ([x, y, w, h] px) outlined, as a data URI."""
    from PIL import Image, ImageDraw

    from detailclip.images import openable

    with Image.open(openable(path)) as image:
        image = image.convert("RGB")
        scale = side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    for x, y, w, h in boxes:
        cx, cy = (x + w / 2) * scale, (y + h / 2) * scale
        half = max(w * scale, h * scale, BOX_MIN_SIDE) / 2 + 1
        draw.rectangle([cx - half, cy - half, cx + half, cy + half], outline=(255, 40, 200), width=2)
    return _data_uri(image)


def gallery_queries(labels: np.ndarray, count: int) -> list[int]:
    """The `count` queries with the most positives in `labels` [Q, N] (ties: lower index first)."""
    positives = (labels == 1).sum(axis=1)
    order = sorted((q for q in range(len(labels)) if positives[q] > 0), key=lambda q: (-positives[q], q))
    return order[:count]


def top_images(scores: np.ndarray, labels: np.ndarray, top: int) -> list[int]:
    """Indices of the `top` best-scored images among those ranked for this query (label != -1);
    ties in image order."""
    ranked = np.flatnonzero(labels != -1)
    order = np.argsort(-scores[ranked], kind="stable")
    return ranked[order[:top]].tolist()


def _table_html(header: list[str], body: list[list[str]], caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in body)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _figure_svg(table: pd.DataFrame) -> str:
    import matplotlib.pyplot as plt

    fig = figure(table)
    buffer = io.StringIO()
    save_figure(fig, buffer, "svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]


def _per_class_html(rows: pd.DataFrame, records: dict[str, dict]) -> str:
    """AP per class (rows) and run (columns), overall."""
    runs = [(row["label"], records[row["file"]]["metrics"]["overall"]["per_class"]) for _, row in rows.iterrows()]
    classes = list(runs[0][1])
    ap = [{c: row["AP"] for c, row in per.items()} for _, per in runs]  # a run may lack a class of the first
    body = [[c, *("-" if a.get(c) is None else f"{a[c]:.3f}" for a in ap), str(runs[0][1][c]["n_positives"])] for c in classes]
    return _table_html(["class", *(label for label, _ in runs), "positives"], body, "AP per class (all scales)")


def _gallery_html(query: str, bucket: str, runs: dict, images: list, labels, top: int) -> str:
    """One query: a row per method, its top images (benchmark.sources.SourceImage) with the query's objects boxed."""
    parts = [f"<h4>“{html.escape(query)}”, bucket {html.escape(bucket)}</h4><div class='gallery'>"]
    for method, scores in runs.items():
        parts.append(f"<div><b>{html.escape(method)}</b></div>")
        shown = top_images(scores, labels, top)
        for rank, i in enumerate(shown, 1):
            boxes = [o.box for o in images[i].objects if o.cls == query and not o.ignore]
            state = "hit" if labels[i] == 1 else "miss"
            name = html.escape(images[i].path.name)
            parts.append(f"<figure><img class='{state}' alt='{name}' title='{name}' src='{thumbnail(images[i].path, boxes)}'>"
                         f"<figcaption>#{rank} {'✓' if state == 'hit' else '✗'} {scores[i]:.3f}</figcaption></figure>")
        parts += ["<div></div>"] * (top - len(shown))
    parts.append("</div>")
    return "".join(parts)


def _gallery_scores(rows: pd.DataFrame, records: dict[str, dict], results: Path) -> dict[str, SavedScores]:
    """Run label -> saved scores of the best run of each gallery method that saved them (rows are sorted
    by mAP); each scores file is a plain name inside `results`, and all of them rank the same queries
    and images with the same labels."""
    chosen = {}
    for _, row in rows.iterrows():
        record = records[row["file"]]
        if record["method"] in GALLERY_METHODS and record["method"] not in chosen and record["scores_file"]:
            chosen[record["method"]] = (row["label"], inside(results, record["scores_file"], source=results / row["file"]))
    saved = {label: load_scores(path) for label, path in (chosen[m] for m in GALLERY_METHODS if m in chosen)}
    first = next(iter(saved.values()), None)
    for label, z in saved.items():
        if (z.classes, z.images, z.bucket_names) != (first.classes, first.images, first.bucket_names) or not (
                np.array_equal(z.labels_buckets, first.labels_buckets)):  # fmt: skip
            raise ScoresError(f"{results}: the scores files of {label} and {next(iter(saved))} rank different data")
    return saved


def _galleries_html(rows: pd.DataFrame, records: dict[str, dict], results: Path, source, queries: int, top: int) -> str:
    """Top images of the gallery methods for the most populated queries of the smallest bucket with
    positives; `source` (benchmark.sources.Source) must be the split these runs scored."""
    saved = _gallery_scores(rows, records, results)
    if not saved:
        return "<p>No saved scores of clip, detailclip or cc-max runs: run bench without --no-save-scores for galleries.</p>"
    z = next(iter(saved.values()))
    b = next((b for b, labels in enumerate(z.labels_buckets) if (labels == 1).any()), None)
    if b is None:
        return "<p>No bucket holds a positive: no galleries.</p>"
    bucket, labels = z.bucket_names[b], z.labels_buckets[b]
    by_name = {image.name: image for image in source.images}
    unknown = [name for name in z.images if name not in by_name]
    if unknown:
        raise ScoresError(f"{results}: the saved scores rank image {unknown[0]!r}, which the data given lacks")
    images = [by_name[name] for name in z.images]
    parts = [f"<h3>Top {top} in the smallest bucket with positives ({html.escape(bucket)})</h3>"
             "<p>Green frame: the image holds the query's class in this bucket; red: it does not. "
             "Pink boxes: the query's objects (drawn at least 10 px).</p>"]
    for q in gallery_queries(labels, queries):
        scores = {label: s.scores[q] for label, s in saved.items()}
        parts.append(_gallery_html(z.classes[q], bucket, scores, images, labels[q], top))
    return "".join(parts)


def build_report(results: Path, data: SourceSpec | None = None, baselines=(), queries: int = 3, top: int = 5,
                 warn=print, verify: bool = False) -> str:
    """The report's HTML for every run in `results`; the galleries need the data (a CLEVR-DS split,
    COCO or DOTA) and show for the runs of that data (by content hash). With `verify` the tables hold
    each run's verdict (benchmark.verify)."""
    results = Path(results)
    loaded = load_runs(results, warn)
    if not loaded:
        raise ValueError(f"no run records (*.json) in {results}")
    records = {source: record for record, source in loaded}
    source = data.open(allow_incomplete=True) if data is not None else None
    table = build_table(loaded, baselines, verify_runs(loaded, results) if verify else None)
    body = []
    for text, rows in groups(table):
        header, cells = group_cells(rows)
        body += [f"<h2>{html.escape(rows.iloc[0]['dataset'])}, split {html.escape(rows.iloc[0]['split'])}</h2>",
                 _table_html(header, cells, text), _per_class_html(rows, records)]
        if source is not None and records[rows.iloc[0]["file"]]["split_hash"] == source.content_hash:
            body.append(_galleries_html(rows, records, results, source, queries, top))
    if source is not None and all(record["split_hash"] != source.content_hash for record in records.values()):
        warn(f"warning: no run in {results} scored the data given for the galleries ({source.dataset} "
             f"{source.split}, content {source.content_hash[:12]}); the report has none")
    body.insert(0, f"<h2>mAP per scale bucket</h2><figure>{_figure_svg(table)}</figure>")
    return page("Detail-preserving retrieval: benchmark report", body)


def page(title: str, body: list[str]) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(body)}{COUNT_IMAGES}</body></html>")


"""Merge run records into a leaderboard: a CSV, a markdown table and a plot (PNG, SVG, PDF).

Runs are grouped by what makes their figures comparable: the split's content hash, the labels of
the protocol (buckets, minimum visible pixels) and the bootstrap settings. Each group gets one
caption (dataset, split, hash, images, queries and positives per bucket, backbone and weights when
shared), and each run of a group is compared with the group's best single-vector method (and any
baseline) by a paired bootstrap over images: runs of one group hold replicates from the same
resamples of the same images, so their differences are the bootstrap distribution of the difference
(benchmark.uncertainty). Runs of different groups are never compared.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pandas as pd

from clevr_ds.standards import published
from detailclip.cover import COVER_SCHEMES
from infra.atomic import Writer, text_writer, write_together

from .results import COST_KEYS, FIGURE
from .uncertainty import paired_difference

BUCKET_PREFIX = "mAP "
GROUND_TRUTH_METHODS = ("oracle-crop",)  # upper bounds: they use the annotations, not only the image
BEST_SINGLE = "best single-vector"
SIGNIFICANCE = 0.05
NOT_SIGNIFICANT = "†"
MARKDOWN_COST = {"vectors_per_image": "vectors/img", "forward_passes_per_image": "passes/img", "gflops_per_image": "GFLOPs/img"}
PLOT_FORMATS = ("png", "svg", "pdf")
VERIFIED_COLUMN = "verified"  # benchmark.verify's verdicts


def file_name(value) -> str | None:
    """A file path reduced to its file name (no machine's folders in a published table); tags unchanged."""
    if value is None or str(value).startswith("hf-hub:"):
        return value
    return Path(str(value).replace("\\", "/")).name


def _interval(block: dict) -> dict:
    lo, hi = block.get("mAP_ci") or (None, None)
    return {"map_lo": lo, "map_hi": hi}


def run_row(record: dict, source: str = "") -> dict:
    """One leaderboard row: identity, overall figures with interval, mAP per bucket with interval, costs."""
    row = {"label": record["method"], "method": record["method"], "backbone": record["backbone"],
           "pretrained": file_name(record["pretrained"]), "checkpoint": file_name(record["method_settings"].get("checkpoint")),
           "uses_ground_truth": record["method"] in GROUND_TRUTH_METHODS, "dataset": record["dataset"],
           "split": record["split"], "split_hash": record["split_hash"][:12], "n_images": record["n_images"]}  # fmt: skip
    overall = record["metrics"]["overall"]
    row.update(mAP=overall["mAP"], **_interval(overall))
    row.update({k: v for k, v in overall.items() if FIGURE.fullmatch(k) or k in ("n_queries", "n_queries_without_positives", "n_positives")})
    for name, block in record["metrics"]["buckets"].items():
        row[f"{BUCKET_PREFIX}{name}"] = block["mAP"]
        row.update({f"{k} {name}": v for k, v in _interval(block).items()})
        row.update({f"n_queries {name}": block["n_queries"], f"n_positives {name}": block["n_positives"]})
    row.update({k: record["cost"][k] for k in COST_KEYS})
    row.update(encode_device=record["cost"].get("encode_device"), encode_threads=record["cost"].get("encode_threads"))
    row.update(run_id=record["run_id"], seed=record["seed"], file=source, **_made_by(record["software"]))
    return row


def _made_by(software: dict) -> dict:
    """The project's version and the git commit (12 digits, "-dirty" when tracked files differed) a run recorded."""
    git = software.get("git")
    commit = f"{git['commit'][:12]}{'-dirty' if git['dirty'] else ''}" if git else None
    return {"version": software.get("clevr-ds"), "commit": commit}


def bucket_names(rows: pd.DataFrame) -> list[str]:
    """The buckets of these rows' protocol (a table of several groups may hold others)."""
    names = [c.removeprefix(BUCKET_PREFIX) for c in rows.columns if c.startswith(BUCKET_PREFIX)]
    return [b for b in names if rows[f"n_queries {b}"].notna().any()]


def group_key(record: dict) -> str:
    """Runs with equal keys rank the same images against the same labels, with the same resamples."""
    protocol = record["protocol"]
    return json.dumps([record["dataset"], record["split"], record["split_hash"], record["n_images"], protocol.get("buckets"),
                       protocol.get("min_visible_pixels"), record["metrics"].get("bootstrap")], sort_keys=True)  # fmt: skip


def run_labels(records: list[dict]) -> list[str]:
    """Method, checkpoint file, the cover's k, backbone and weights where they differ, run id where still
    ambiguous."""
    several_backbones = len({(r["backbone"], r["pretrained"]) for r in records}) > 1
    covered = [r["method_settings"].get("scheme") in COVER_SCHEMES for r in records]  # k of a cover, not of the image
    several_covers = len({str(r["method_settings"]["k"]) for r, c in zip(records, covered) if c}) > 1
    labels = []
    for r, has_cover in zip(records, covered):
        label = r["method"]
        if r["method_settings"].get("checkpoint"):
            label += f" ({file_name(r['method_settings']['checkpoint'])})"
        if several_covers and has_cover:
            label += f" k={r['method_settings']['k']}"
        if several_backbones:
            label += f" [{r['backbone']}, {file_name(r['pretrained'])}]"
        labels.append(label)
    return [f"{lab} (run {r['run_id'][:6]})" if labels.count(lab) > 1 else lab for lab, r in zip(labels, records)]


def _references(records: list[dict], labels: list[str], baselines) -> dict[str, int]:
    """Reference name -> index of its run: the best single-vector run, then each baseline present."""

    def best(indices) -> int | None:
        scored = [i for i in indices if records[i]["metrics"]["overall"]["mAP"] is not None]
        return max(scored, key=lambda i: records[i]["metrics"]["overall"]["mAP"], default=None)

    everyone = range(len(records))
    refs = {BEST_SINGLE: best(i for i in everyone if records[i]["cost"]["vectors_per_image"] == 1
                              and records[i]["method"] not in GROUND_TRUTH_METHODS)}  # fmt: skip
    for name in baselines:
        refs[name] = best(i for i in everyone if name in (labels[i], records[i]["method"]))
    return {name: i for name, i in refs.items() if i is not None}


def _compare(record: dict, ref: dict) -> dict:
    """Paired differences record - ref, overall and per bucket: delta, interval, significance."""
    blocks = {"": (record["metrics"]["overall"], ref["metrics"]["overall"])}
    blocks.update({f" {n}": (b, ref["metrics"]["buckets"].get(n)) for n, b in record["metrics"]["buckets"].items()})
    out = {}
    for suffix, (a, b) in blocks.items():
        if b is None or a["mAP"] is None or b["mAP"] is None:
            continue
        diff = paired_difference(a["mAP"], a["mAP_replicates"], b["mAP"], b["mAP_replicates"], 1 - SIGNIFICANCE)
        out.update({f"{k}{suffix}": v for k, v in diff.items()})
    return out


def build_table(records: list[tuple[dict, str]], baselines=(), verdicts: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows grouped by comparable runs, best overall mAP first; captions in `table.attrs["captions"]`.

    Comparison columns are named `<stat> vs <reference>` (e.g. `delta vs best single-vector`,
    `significant 0.01-0.0215 vs clip`); a reference run is not compared with itself. With `verdicts`
    (file name -> benchmark.verify's verdict) each row gets a `verified` column.
    """
    by_group: dict[str, list[tuple[dict, str]]] = {}
    for record, source in records:
        by_group.setdefault(group_key(record), []).append((record, source))
    rows, captions = [], {}
    for g, members in enumerate(by_group.values()):
        recs = [r for r, _ in members]
        labels = run_labels(recs)
        refs = _references(recs, labels, baselines)
        for i, (record, source) in enumerate(members):
            row = {**run_row(record, source), "label": labels[i], "group": g}
            if verdicts is not None:
                row[VERIFIED_COLUMN] = verdicts[source]
            for name, j in refs.items():
                row[f"ref vs {name}"] = labels[j]
                if j != i:
                    row.update({f"{k} vs {name}": v for k, v in _compare(record, recs[j]).items()})
            rows.append(row)
        captions[g] = caption(recs, {name: labels[j] for name, j in refs.items()})
    missing = [b for b in baselines if not any(b in (r["label"], r["method"]) for r in rows)]
    if missing:
        raise ValueError(f"no run of baseline {missing[0]!r} (name a method or a run label)")
    table = pd.DataFrame(rows)
    figures = [c for c in table.columns if c.split(" ")[0] in ("mAP", "map_lo", "map_hi")]
    table[figures] = table[figures].astype(float)
    table = table.sort_values(["group", "mAP", "label"], ascending=[True, False, True], na_position="last", kind="stable")
    table = table.reset_index(drop=True)
    table.attrs["captions"] = captions
    return table


def caption(records: list[dict], refs: dict[str, str]) -> str:
    """Dataset, split, content hash, counts per bucket, shared backbone, interval and test settings."""
    r = records[0]
    overall, buckets = r["metrics"]["overall"], r["metrics"]["buckets"]
    counts = "; ".join(f"{n}: {b['n_queries']} / {b['n_positives']}" for n, b in buckets.items())
    standard = published(r["split_hash"])
    name = f" = {standard.title} {standard.split}, {standard.cpu} render" if standard else ""
    text = (f"{r['dataset']}, split {r['split']} (content {r['split_hash'][:12]}{name}), {r['n_images']} images, "
            f"{overall['n_queries']} queries with {overall['n_positives']} positives; "
            f"per bucket (queries / positives): {counts}.")  # fmt: skip
    if len({(x["backbone"], x["pretrained"]) for x in records}) == 1:
        text += f" Backbone {r['backbone']}, weights {file_name(r['pretrained'])}."
    boot = r["metrics"].get("bootstrap")
    if boot:
        text += (f" mAP (lo-hi): {boot['level']:.0%} {boot['interval']} bootstrap interval over images, B = {boot['resamples']}"
                 " (bias-corrected: it need not contain the estimate).")
    if refs:
        best = refs.get(BEST_SINGLE)
        against = " and ".join(f"{label} ({BEST_SINGLE})" if label == best else label for label in dict.fromkeys(refs.values()))
        text += (f" Δ: mAP difference from {against}, paired bootstrap over images; {NOT_SIGNIFICANT} not significant at "
                 f"{SIGNIFICANCE:.0%} (in mAP cells: against the {BEST_SINGLE} run).")  # fmt: skip
    if any(x["method"] in GROUND_TRUTH_METHODS for x in records):
        text += f" {', '.join(GROUND_TRUTH_METHODS)}: an upper bound that uses the ground-truth boxes."
    return text


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value, spec: str = ".3f") -> str:
    if _missing(value):
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def _map_cell(row, suffix: str = "") -> str:
    cell = _fmt(row[f"mAP{suffix}"])
    if not _missing(row.get(f"map_lo{suffix}")):
        cell += f" ({_fmt(row[f'map_lo{suffix}'])}-{_fmt(row[f'map_hi{suffix}'])})"
    significant = row.get(f"significant{suffix} vs {BEST_SINGLE}")
    return cell + (NOT_SIGNIFICANT if not _missing(significant) and not significant else "")


def _delta_cell(row, name: str) -> str:
    delta = row.get(f"delta vs {name}")
    if _missing(delta):
        return "ref" if row["label"] == row.get(f"ref vs {name}") else "-"
    return f"{delta:+.3f}" + ("" if row[f"significant vs {name}"] else NOT_SIGNIFICANT)


def _speed_header(rows: pd.DataFrame) -> str | None:
    """`img/s (DEVICE, N threads)` when every run measured its speed on one stated device; else None."""
    where = {(d, t) for d, t in zip(rows["encode_device"], rows["encode_threads"])}
    if len(where) != 1 or any(_missing(x) for x in next(iter(where))):
        return None
    device, threads = next(iter(where))
    return f"img/s ({device}, {int(threads)} threads)"


def group_cells(rows: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """One group's table as text: header and rows of cells (shared by markdown and the HTML report)."""
    refs = [c.removeprefix("ref vs ") for c in rows.columns if c.startswith("ref vs ") and rows[c].notna().any()]
    header = ["run", "mAP", *bucket_names(rows), *(f"Δ vs {r}" for r in refs), *MARKDOWN_COST.values()]
    speed = _speed_header(rows)
    header += [speed] if speed else []
    header += [VERIFIED_COLUMN] if VERIFIED_COLUMN in rows.columns else []
    body = []
    for _, row in rows.iterrows():
        cells = [row["label"] + (" (upper bound)" if row["uses_ground_truth"] else ""), _map_cell(row)]
        cells += [_map_cell(row, f" {b}") for b in bucket_names(rows)]
        cells += [_delta_cell(row, r) for r in refs]
        cells += [_fmt(row[c], ".3g") for c in MARKDOWN_COST]
        cells += [_fmt(row["encode_images_per_s"], ".3g")] if speed else []
        cells += [row[VERIFIED_COLUMN]] if VERIFIED_COLUMN in rows.columns else []
        body.append(cells)
    return header, body


def group_markdown(rows: pd.DataFrame, text: str) -> str:
    """One group: its caption, then a GitHub markdown table."""
    header, body = group_cells(rows)
    lines = [text, "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def groups(table: pd.DataFrame):
    """(caption, rows) of each group of comparable runs."""
    for g, rows in table.groupby("group", sort=True):
        yield table.attrs["captions"][g], rows


def to_markdown(table: pd.DataFrame) -> str:
    """Every group of comparable runs: caption and table."""
    return "\n".join(group_markdown(rows, text) for text, rows in groups(table))


def to_csv(table: pd.DataFrame) -> str:
    """The captions as `#` lines (read with `pd.read_csv(path, comment="#")`), then one row per run."""
    captions = "".join(f"# {text}\n" for text, _ in groups(table))
    return captions + table.to_csv(index=False)


def figure(table: pd.DataFrame):
    """A matplotlib figure of mAP against scale bucket with interval bars, one line per run and one panel per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(groups(table))
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 4.5 * len(panels)), squeeze=False)
    for ax, (text, rows) in zip(axes[:, 0], panels):
        names = bucket_names(rows)
        for n, (_, row) in enumerate(rows.iterrows()):
            x = [b + 0.04 * (n - (len(rows) - 1) / 2) for b in range(len(names))]
            gt = row["uses_ground_truth"]
            (line,) = ax.plot(x, [row[f"mAP {b}"] for b in names], marker="o", linestyle="--" if gt else "-",
                              color="0.5" if gt else None, label=row["label"] + (" (upper bound: ground truth)" if gt else ""))
            # Bias-corrected intervals need not contain the estimate, hence bars from lo to hi, not +- errors.
            ax.vlines(x, [row[f"map_lo {b}"] for b in names], [row[f"map_hi {b}"] for b in names], color=line.get_color(), alpha=0.6)
        ax.set_xticks(range(len(names)), names)
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_xlabel("scale bucket (rel_scale of the largest instance)")
        ax.set_ylabel("mAP")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.set_title("\n".join(textwrap.wrap(text, 100)), fontsize=6, loc="left")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def figure_writer(fig, fmt: str) -> Writer:
    """A writer of `fig` in format `fmt` (png, svg, pdf), with `save_figure`'s reproducible bytes."""
    return lambda path: save_figure(fig, path, fmt, dpi=120)


def save_figure(fig, target, fmt: str, **options) -> None:
    """fig.savefig with the same bytes for the same figure: no creation date, fixed SVG ids."""
    import matplotlib

    dateless = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)
    with matplotlib.rc_context({"svg.hashsalt": "clevr-ds"}):
        fig.savefig(target, format=fmt, bbox_inches="tight", metadata=dateless, **options)


def write_leaderboard(table: pd.DataFrame, csv_path: Path) -> list[Path]:
    """Write the CSV, and beside it a .md table and the plot as .png, .svg and .pdf, as one set
    (all or none, infra.atomic.write_together); return the paths."""
    import matplotlib.pyplot as plt

    csv_path = Path(csv_path)
    fig = figure(table)
    writers = {csv_path: text_writer(to_csv(table)), csv_path.with_suffix(".md"): text_writer(to_markdown(table))}
    writers.update({csv_path.with_suffix(f".{fmt}"): figure_writer(fig, fmt) for fmt in PLOT_FORMATS})
    try:
        return write_together(writers)
    finally:
        plt.close(fig)

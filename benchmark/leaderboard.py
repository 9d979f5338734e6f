"""Merge run records into a leaderboard: a CSV (one row per run), a markdown table and a PNG plot."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from clevr_ds.atomic import atomic_path, write_text

from .results import COST_KEYS

ID_COLUMNS = ("method", "backbone", "pretrained", "checkpoint", "dataset", "split", "split_hash", "n_images")
BUCKET_PREFIX = "mAP "
MARKDOWN_COST = {"vectors_per_image": "vectors/img", "forward_passes_per_image": "passes/img", "gflops_per_image": "GFLOPs/img",
                 "encode_images_per_s": "img/s"}  # fmt: skip


def _overall_columns(overall: dict) -> dict:
    skip = {"per_class", "n_negatives"}
    return {k: v for k, v in overall.items() if k not in skip}


def run_row(record: dict, source: str = "") -> dict:
    """One leaderboard row: identity, overall figures, mAP per bucket, costs."""
    row = {k: record.get(k) for k in ID_COLUMNS}
    row["checkpoint"] = record["method_settings"].get("checkpoint")
    row["split_hash"] = record["split_hash"][:12]
    row.update(_overall_columns(record["metrics"]["overall"]))
    for name, block in record["metrics"]["buckets"].items():
        row[f"{BUCKET_PREFIX}{name}"] = block["mAP"]
        row[f"n_positives {name}"] = block["n_positives"]
    row.update({k: record["cost"][k] for k in COST_KEYS})
    row.update(run_id=record["run_id"], seed=record["seed"], file=source)
    return row


def bucket_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith(BUCKET_PREFIX)]


def build_table(records: list[tuple[dict, str]]) -> pd.DataFrame:
    """Rows sorted by dataset and split, best overall mAP first."""
    table = pd.DataFrame([run_row(r, src) for r, src in records])
    return table.sort_values(["dataset", "split", "split_hash", "mAP", "method"], ascending=[True, True, True, False, True],
                             na_position="last", kind="stable").reset_index(drop=True)  # fmt: skip


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table: who, overall mAP, mAP per bucket, costs."""
    cols = ["method", "backbone", "pretrained", "mAP", *bucket_columns(table), *MARKDOWN_COST]
    header = [MARKDOWN_COST.get(c, c) for c in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i < 3 else "---:" for i in range(len(cols))) + "|"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], ".3g" if c in MARKDOWN_COST else ".3f") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame, path: Path) -> None:
    """mAP against scale bucket, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = bucket_columns(table)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for _, row in table.iterrows():
        ax.plot(range(len(cols)), [row[c] for c in cols], marker="o", label=f"{row['method']} ({row['backbone']}, {row['pretrained']})")
    ax.set_xticks(range(len(cols)), [c.removeprefix(BUCKET_PREFIX) for c in cols])
    ax.set_xlabel("scale bucket (rel_scale of the largest instance)")
    ax.set_ylabel("mAP")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def write_leaderboard(records: list[tuple[dict, str]], csv_path: Path) -> dict[str, Path]:
    """Write the CSV, and beside it a .md table and a .png plot; return the three paths."""
    table = build_table(records)
    csv_path = Path(csv_path)
    paths = {"csv": csv_path, "markdown": csv_path.with_suffix(".md"), "plot": csv_path.with_suffix(".png")}
    write_text(paths["csv"], table.to_csv(index=False))
    write_text(paths["markdown"], to_markdown(table))
    plot(table, paths["plot"])
    return paths

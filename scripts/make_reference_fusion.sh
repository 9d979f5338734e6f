#!/usr/bin/env bash
# Regenerate the shipped DetailCLIP fusion checkpoint (detailclip/weights/) on the installed reference
# backbone: render its matched training data, train with `train`'s defaults (the shipped recipe,
# detailclip/recipe.py) and install the checkpoint. At 1120 px, scales 0.01-0.1 give objects the size
# of the 2240 px test splits' both relative to the Complete Cover windows and in backbone pixels.
# Seed 14 for the data, 0 for training. Every step resumes after a kill: run the script again.
# Environment: PYTHON (default .venv/bin/python), DATA (default output/clevr-ds-fusion),
# OUT (default output/reference-weights), QUIET=1 for no progress bars.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA:-output/clevr-ds-fusion}
OUT=${OUT:-output/reference-weights}
FUSION=detailclip-tiny-cc10-clevr-ds-v3.pt
QUIET=${QUIET:+--quiet}

for split in "train 1200" "val 200"; do
    set -- $split
    $PY cli.py render --out "$DATA" --split "$1" -n "$2" --resolution 1120 --scales 0.01-0.1 --preset fast \
        --seed 14 $QUIET
done
$PY cli.py train --data "$DATA" --split train --val-split val --out "$OUT/$FUSION" --resume $QUIET
scripts/install_weights.sh "$OUT/$FUSION"

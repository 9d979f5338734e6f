#!/usr/bin/env bash
# Regenerate a scene family's shipped DetailCLIP fusion checkpoint (detailclip/weights/) on its installed
# reference backbone: render its matched training data, train with `train`'s defaults (the shipped recipe,
# detailclip/recipe.py: the auto cover with magnified windows, the calibrated teacher; aerial: the same on the
# aerial backbone with the aerial prompts) and install the checkpoint.
# At 1120 px, scales 0.01-0.1 give objects the size of the 2240 px test splits' both relative to the
# Complete Cover windows and in backbone pixels. Seed 14 for the data, 0 for training. Every step resumes
# after a kill: run the script again.
# Environment: FAMILY (clevr, the default, or aerial), PYTHON (default .venv/bin/python), DATA (default
# output/clevr-ds-fusion, output/aerial-fusion), OUT (default output/reference-weights), QUIET=1 for no
# progress bars.
set -euo pipefail
cd "$(dirname "$0")/.."
FAMILY=${FAMILY:-clevr}
case $FAMILY in
    clevr) FUSION=detailclip-tiny-ccfine-clevr-ds-v3.pt TRAIN=1200 VAL=200 DEFAULT_DATA=output/clevr-ds-fusion FLAGS=() ;;
    aerial) FUSION=detailclip-tiny-ccfine-clevr-ds-aerial-v1.pt TRAIN=480 VAL=80 DEFAULT_DATA=output/aerial-fusion
            FLAGS=(--pretrained clevr-ds-aerial-v1 --templates aerial) ;;
    *) echo "error: FAMILY must be clevr or aerial, not $FAMILY" >&2; exit 2 ;;
esac
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA:-$DEFAULT_DATA}
OUT=${OUT:-output/reference-weights}
QUIET=${QUIET:+--quiet}

for split in "val $VAL" "train $TRAIN"; do
    set -- $split
    $PY cli.py render --family "$FAMILY" --out "$DATA" --split "$1" -n "$2" --resolution 1120 --scales 0.01-0.1 \
        --preset fast --seed 14 $QUIET
done
$PY cli.py train --data "$DATA" --split train --val-split val "${FLAGS[@]}" --out "$OUT/$FUSION" --resume $QUIET
scripts/install_weights.sh "$OUT/$FUSION"

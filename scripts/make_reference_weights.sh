#!/usr/bin/env bash
# Regenerate a scene family's shipped reference weights (detailclip/weights/) from nothing: render the
# backbone's data, train the backbone, install it under its tag, then regenerate the DetailCLIP fusion
# on it (scripts/make_reference_fusion.sh). Seed 0 throughout (the fusion's data: 14). Every step
# resumes after a kill: run the script again.
# Environment: FAMILY (clevr, the default: tag clevr-ds-v3; aerial: tag clevr-ds-aerial-v1),
# PYTHON (default .venv/bin/python), DATA (default output/clevr-ds-backbone, output/aerial-backbone),
# OUT (default output/reference-weights), QUIET=1 for no progress bars.
set -euo pipefail
cd "$(dirname "$0")/.."
FAMILY=${FAMILY:-clevr}
case $FAMILY in
    clevr) TAG=clevr-ds-v3 BACKBONE=clevr-ds-vit-t-16-v3 STEPS=5000 DEFAULT_DATA=output/clevr-ds-backbone ;;
    aerial) TAG=clevr-ds-aerial-v1 BACKBONE=clevr-ds-vit-t-16-aerial-v1 STEPS=2000 DEFAULT_DATA=output/aerial-backbone ;;
    *) echo "error: FAMILY must be clevr or aerial, not $FAMILY" >&2; exit 2 ;;
esac
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA:-$DEFAULT_DATA}
OUT=${OUT:-output/reference-weights}
QUIET=${QUIET:+--quiet}

# 1. data: at 1120 px, scales 0.02-0.2 give objects the pixel sizes of 0.01-0.1 at 2240 px
for split in "train 240" "val 40"; do
    set -- $split
    $PY cli.py render --family "$FAMILY" --out "$DATA" --split "$1" -n "$2" --resolution 1120 --scales 0.02-0.2 \
        --workers 2 --seed 0 $QUIET
done

# 2. backbone (captions and prompts in the family's words: train-backbone takes the data's prompt set)
$PY cli.py train-backbone --data "$DATA" --split train --val-split val --backbone CLEVR-DS-ViT-T-16 \
    --steps "$STEPS" --batch-size 64 --images-per-batch 8 --lr 3e-4 --warmup 0.03 \
    --eval-every 100 --checkpoint-every 100 --seed 0 --object-share 0.8 --min-pixels 10 \
    --hard-negatives 2 --class-weight 1 --class-vector-weight 1 \
    --out "$OUT/$BACKBONE.safetensors" --resume $QUIET
scripts/install_weights.sh "$OUT/$BACKBONE.safetensors" "$OUT/$BACKBONE.json"
$PY cli.py zero-shot --data "$DATA" --split val --pretrained "$TAG" --factor 3 --factor 6 --factor 12 \
    --out "$OUT/zero-shot-$TAG.json" $QUIET

# 3. DetailCLIP fusion on the installed backbone (its own matched data; see that script)
FAMILY=$FAMILY PYTHON=$PY OUT=$OUT QUIET=${QUIET:+1} scripts/make_reference_fusion.sh

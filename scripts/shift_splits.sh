#!/usr/bin/env bash
# Issue #28's shift splits: render them, bench the teachers, grid-max, clip and the shipped fusion on each
# at the auto cover, and print the table of the fusion's share of its teacher's (cc-fine-cal) lead per split.
# SET=val renders the validation splits (seeds 2801-2807: choices are made on them), SET=test the test
# splits (seeds 3101-3107: measured once, after the choice). Each shift differs from the fusion's training
# data (2240 px-equivalent scales 0.01-0.1, 3-10 objects, square images) in one way. Every step resumes
# after a kill: run the script again.
# Environment: SET (val, the default, or test), PYTHON (default .venv/bin/python), DATA (default
# output/shift-$SET), RESULTS (default results/shift-$SET), CACHE (feature cache, default
# output/feature-cache), BENCH_FLAGS (extra bench flags, e.g. --checkpoint FILE), QUIET=1 for no progress bars.
set -euo pipefail
cd "$(dirname "$0")/.."
SET=${SET:-val}
case $SET in
    val) SEED=2800 ;;
    test) SEED=3100 ;;
    *) echo "error: SET must be val or test, not $SET" >&2; exit 2 ;;
esac
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA:-output/shift-$SET}
RESULTS=${RESULTS:-results/shift-$SET}
CACHE=${CACHE:-output/feature-cache}
QUIET=${QUIET:+--quiet}

# split name suffix, seed offset, images, render flags
SPLITS=(
    "small 1 100 --scales 0.005-0.1"
    "scale-small 2 100 --scales 0.003-0.03"
    "scale-large 3 100 --scales 0.03-0.3"
    "count 4 100 --objects 1-25"
    "res1120 5 100 --resolution 1120"
    "aspect 6 100 --resolution 3360x1680"
    "res4480 7 40 --resolution 4480"
)
for spec in "${SPLITS[@]}"; do
    set -- $spec
    name=$1 seed=$((SEED + $2)) count=$3
    shift 3
    $PY cli.py render --out "$DATA" --split "$SET-$name" -n "$count" --preset fast --seed "$seed" "$@" $QUIET
done
folders=()
for spec in "${SPLITS[@]}"; do
    set -- $spec
    out="$RESULTS/$SET-$1"
    $PY cli.py bench --data "$DATA" --split "$SET-$1" --model clip,cc-max,grid-max,cc-cal,cc-fine-cal,detailclip --cover-k auto \
        --out "$out" --cache-dir "$CACHE" --skip-existing ${BENCH_FLAGS:-} $QUIET
    folders+=("$out")
done
$PY -m measure.detail_share "${folders[@]}" --teacher cc-fine-cal --markdown

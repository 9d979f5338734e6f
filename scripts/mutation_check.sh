#!/usr/bin/env bash
# Mutation score (issue #15 item 5).
#
#   scripts/mutation_check.sh                      # every module listed in [tool.mutmut] only_mutate
#   scripts/mutation_check.sh clevr_ds/scales.py   # only these modules (faster)
#
# Runs mutmut (pinned below; pip-installed into the current interpreter when missing) over the
# pure-Python modules named in pyproject.toml [tool.mutmut] only_mutate, running only the fast
# test files listed in pytest_add_cli_args_test_selection (no tests/test_renderer_*.py). mutmut 3
# writes a `mutants/` folder next to pyproject.toml, so the script first copies the working tree
# (tracked and untracked-but-not-ignored files) to $MUTATION_WORKDIR and runs there: the checkout
# itself is never written to.
#
# It prints, per module, the mutants killed (a test failed or timed out), survived, and without
# tests, and the score = killed / (mutants - listed equivalents). The equivalent mutants are listed
# at the end of this file with a reason each. Exit status 1 when a module scores under
# $MUTATION_THRESHOLD percent (default 90) or mutmut itself fails.
#
# Environment: PYTHON (default .venv/bin/python, else python), MUTATION_WORKDIR (default
# ${TMPDIR:-/tmp}/clevr-ds-mutation, wiped on each run), MUTATION_JOBS (default: number of CPUs),
# MUTATION_THRESHOLD (default 90), MUTATION_NICE (default 10).
#
# Limitation: mutmut 3 maps tests to functions in-process, so a test that reaches a module only
# through a `python cli.py` subprocess (tests/test_clevr_ds_export.py's CLEVR export) does not count for it.
set -euo pipefail

MUTMUT_VERSION=3.8.1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
WORK=${MUTATION_WORKDIR:-${TMPDIR:-/tmp}/clevr-ds-mutation}
JOBS=${MUTATION_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
THRESHOLD=${MUTATION_THRESHOLD:-90}
NICE=${MUTATION_NICE:-10}

if ! "$PYTHON" -c "import sys, importlib.metadata as m; sys.exit(m.version('mutmut') != '$MUTMUT_VERSION')" 2>/dev/null; then
    echo "installing mutmut==$MUTMUT_VERSION into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
    "$PYTHON" -m pip install -q "mutmut==$MUTMUT_VERSION"
fi

# A private copy of the working tree: mutmut writes mutants/ (and mutated sources) beside pyproject.toml.
case "$WORK" in ""|"/"|"$ROOT"|"$ROOT"/*) echo "refusing MUTATION_WORKDIR=$WORK" >&2; exit 2 ;; esac
rm -rf "$WORK"
mkdir -p "$WORK/tree"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -co --exclude-standard -z \
        | while IFS= read -r -d '' f; do if [[ -e $f ]]; then printf '%s\0' "$f"; fi; done \
        | tar --null -T - -cf -) | tar -xf - -C "$WORK/tree"
else
    tar -C "$ROOT" --exclude=./.venv --exclude=./output --exclude=./mutants --exclude='__pycache__' -cf - . | tar -xf - -C "$WORK/tree"
fi

# The fast test files that exercise each module (mutmut then runs, per mutant, only those of them
# that call the mutated function). A narrow list per module keeps a run short: with all files,
# every function that the tiny Blender split or a benchmark run touches would re-run those.
declare -A TESTS=(
    [clevr_ds/scales.py]="tests/test_clevr_ds_scales.py tests/test_project_properties.py tests/test_clevr_ds_sampling.py tests/test_clevr_ds_scales_mutants.py"
    [clevr_ds/vocab.py]="tests/test_project_properties.py tests/test_clevr_ds_sampling.py tests/test_clevr_ds_vocab_mutants.py"
    [clevr_ds/annotate.py]="tests/test_project_oracles.py tests/test_project_properties.py tests/test_clevr_ds_annotate_mutants.py"
    [infra/paths.py]="tests/test_infra_paths_mutants.py tests/test_benchmark_sources.py"
    [clevr_ds/schema.py]="tests/test_clevr_ds_integrity.py tests/test_clevr_ds_schema_mutants.py"
    [clevr_ds/export.py]="tests/test_project_properties.py tests/test_clevr_ds_export.py tests/test_clevr_ds_export_mutants.py"
    [benchmark/metrics.py]="tests/test_benchmark_metrics.py tests/test_project_properties.py tests/test_benchmark_uncertainty.py tests/test_benchmark_metrics_mutants.py"
    [benchmark/buckets.py]="tests/test_benchmark_protocol.py tests/test_project_properties.py tests/test_benchmark_protocol_mutants.py"
    [benchmark/protocol.py]="tests/test_benchmark_protocol.py tests/test_project_properties.py tests/test_benchmark_protocol_mutants.py"
    [benchmark/uncertainty.py]="tests/test_benchmark_uncertainty.py tests/test_benchmark_metrics.py tests/test_benchmark_uncertainty_mutants.py"
    [benchmark/sources.py]="tests/test_benchmark_protocol.py tests/test_project_properties.py tests/test_benchmark_sources_mutants.py"  # not test_benchmark_sources.py: its two bench runs take ~50 s per mutant
    [detailclip/cover.py]="tests/test_detailclip_cover.py tests/test_project_properties.py tests/test_detailclip_patches.py tests/test_detailclip_cover_mutants.py"
)
if [[ $# -gt 0 ]]; then
    MODULES=("$@")
else
    mapfile -t MODULES < <(cd "$WORK/tree" && "$PYTHON" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutmut"]["only_mutate"]))')
fi

# One mutmut run per module, each in its own copy with only_mutate and the test selection narrowed.
total_start=$(date +%s)
for module in "${MODULES[@]}"; do
    module=${module%.py}.py
    [[ -n "${TESTS[$module]:-}" ]] || { echo "no test list for $module in $0" >&2; exit 2; }
    run="$WORK/run-${module//\//_}"
    cp -a "$WORK/tree" "$run"
    tests=()
    for t in ${TESTS[$module]}; do [[ -e "$run/$t" ]] && tests+=("$t"); done
    (cd "$run" && "$PYTHON" - "$module" "${tests[@]}" <<'PY'
import json, re, sys
from pathlib import Path
module, tests = sys.argv[1], sys.argv[2:]
p = Path("pyproject.toml")
s = p.read_text()
s = re.sub(r"(?ms)^only_mutate = \[.*?^\]\n", "only_mutate = " + json.dumps([module]) + "\n", s)
s = re.sub(r"(?ms)^pytest_add_cli_args_test_selection = \[.*?^\]\n",
           "pytest_add_cli_args_test_selection = " + json.dumps(tests) + "\n", s)
p.write_text(s)
PY
    )
    start=$(date +%s)
    set +e
    (cd "$run" && nice -n "$NICE" "$PYTHON" -m mutmut run --max-children "$JOBS" >"$run/mutmut-run.log" 2>&1)
    rc=$?
    set -e
    echo "$module: mutmut exit $rc in $(( $(date +%s) - start ))s (${#tests[@]} test files; log $run/mutmut-run.log)"
    if [[ $rc -ne 0 ]]; then
        tr '\r' '\n' <"$run/mutmut-run.log" | tail -n 20 >&2
        exit 1
    fi
done
echo "mutmut $MUTMUT_VERSION: ${#MODULES[@]} module(s) in $(( $(date +%s) - total_start ))s"

cd "$WORK"
EQUIVALENTS="$ROOT/scripts/mutation_check.sh" THRESHOLD="$THRESHOLD" "$PYTHON" - "${MODULES[@]}" <<'PY'
import json
import os
import sys
from pathlib import Path

KILLED = {1, 3, 36, -24, 24, 152, 255, -11, -9}  # a test failed, crashed or timed out
TIMEOUTS = {36, -24, 24, 152, 255}
NO_TESTS = {5, 33}
SURVIVED = {0}

script = Path(os.environ["EQUIVALENTS"]).read_text().split("\n")
equivalent = {}
inside = False
for line in script:
    if line.startswith("# EQUIVALENT MUTANTS"):
        inside = True
        continue
    if inside and line.startswith("#   "):
        name, _, reason = line[4:].partition(" ")
        equivalent[name] = reason.strip()

modules = [a if a.endswith(".py") else a + ".py" for a in sys.argv[1:]]
threshold = float(os.environ["THRESHOLD"])
failed = False
seen_equivalent = set()
print(f"{'module':28} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} {'equiv':>5} {'score':>7}")
for module in modules:
    meta = Path("run-" + module.replace("/", "_")) / "mutants" / (module + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    killed = sum(c in KILLED for c in codes.values())
    equiv = [k for k, c in codes.items() if k in equivalent and c not in KILLED]
    seen_equivalent.update(k for k in codes if k in equivalent)
    survivors = [k for k, c in codes.items() if c not in KILLED and k not in equivalent]
    survived = sum(codes[k] in SURVIVED for k in survivors)
    no_tests = sum(codes[k] in NO_TESTS for k in survivors)
    other = len(survivors) - survived - no_tests
    denominator = len(codes) - len(equiv)
    score = 100.0 * killed / denominator if denominator else 100.0
    flag = "" if score >= threshold else "  < threshold"
    failed |= score < threshold or not codes
    timeouts = sum(c in TIMEOUTS for c in codes.values())
    extra = f" (+{other} not run/suspicious)" if other else ""
    extra += f" ({timeouts} of the kills are timeouts: check them on an idle machine)" if timeouts else ""
    print(f"{module:28} {len(codes):7d} {killed:6d} {survived:8d} {no_tests:8d} {len(equiv):5d} {score:6.1f}%{flag}{extra}")
    for k in survivors:
        if codes[k] is not None:  # None: not run (an interrupted run); counted in the "not run" note
            print(f"    survivor: {k} (exit {codes[k]})")
stale = sorted(k for k in equivalent if k not in seen_equivalent and any(k.startswith(m[:-3].replace("/", ".") + ".") for m in modules))
for k in stale:
    print(f"    listed equivalent but not generated any more (renumbered? update the list): {k}")
print(f"score = killed / (mutants - listed equivalents); threshold {threshold:g}%; show one: cd {os.getcwd()}/run-MODULE && python -m mutmut show NAME")
sys.exit(1 if failed else 0)
PY

# EQUIVALENT MUTANTS (name, then why no test can tell it from the original; numbering is mutmut's)
#   clevr_ds.scales.x_parse_int_range__mutmut_8 `spec or ""` -> `spec or "XXXX"`: both fallbacks fail the N / A-B pattern, and the error shows `spec`, not the fallback.
#   clevr_ds.annotate.x_encode_mask__mutmut_16 .decode("ascii") -> .decode("ASCII"): Python codec names are case-insensitive.
#   clevr_ds.annotate.x_decode_mask__mutmut_13 .encode("ascii") -> .encode("ASCII"): Python codec names are case-insensitive.
#   clevr_ds.annotate.x_annotate_objects__mutmut_18 bincount minlength n+1 -> n+2: the extra trailing bin (id n+1) is never read; counts[i + 1] is read for i < n only.
#   clevr_ds.export.x_coco_categories__mutmut_9 name.split(" ", 1) -> name.split(None, 1): class names are f"{colour} {shape}" with one space; the two differ only for names holding runs of whitespace, tabs or newlines.
#   clevr_ds.export.x_manifest__mutmut_57 float("nan") -> float("NAN"): float() parses nan case-insensitively.
#   clevr_ds.export.x_manifest__mutmut_66 float("nan") -> float("NAN"): float() parses nan case-insensitively.
#   clevr_ds.export.x_write_exports__mutmut_21 to_csv(index=False) -> to_csv(index=None): pandas treats the index flag as a truth value; None writes no index either.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_4 as_tensor(labels, dtype=int8) -> dtype=None: labels hold 1 / 0 / -1, and the comparisons with POSITIVE / NEGATIVE give the same masks in any numeric dtype.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_6 as_tensor(labels, dtype=int8) -> no dtype: as mutmut_4.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_30 positive.cumsum(dtype=float32) -> dtype=None (int64): counts are exact in both below 2**24, and torch promotes int64 + float32 to the same float32 ranks.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_32 positive.cumsum(dtype=float32) -> no dtype: as mutmut_30.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_40 (ranked == NEGATIVE).cumsum(dtype=float32) -> dtype=None: as mutmut_30.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_42 (ranked == NEGATIVE).cumsum(dtype=float32) -> no dtype: as mutmut_30.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_56 rank of non-relevant slots 0.0 -> 1.0: AP masks them out, and tp_at(k) counts last_rank <= k for k >= 1 (validated), where 0 and 1 both count; k = n_pos = 0 only for queries without positives, which are NaN.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_64 zeros(dtype=float64) -> dtype=None (float32) for n_pos of an image set with no images: every figure of such queries is NaN and n_positives is cast to int, whatever the float width.
#   detailclip.cover.x__object_levels__mutmut_20 `[crops] if crops` -> `if crops or True`: an empty crop level adds no boxes and no level ids to scheme_boxes' flattened tensors.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_66 zeros(dtype=float64) -> no dtype: as mutmut_64.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_93 as_tensor(k, dtype=float32) -> dtype=None in tp_at: k is a whole number (an int or the positive count), exact in any dtype, and searchsorted compares it with the same result.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_95 as_tensor(k, dtype=float32) -> no dtype: as mutmut_93.
#   benchmark.metrics.xǁRankingǁmetrics__mutmut_121 float("nan") -> float("NAN"): float() parses nan case-insensitively.
#   detailclip.cover.x_grid_boxes__mutmut_20 xs over range(n + 1) -> range(n + 2): the extra edge is never read (boxes use xs[i], xs[i + 1] for i < n).
#   benchmark.metrics.xǁRankingǁ__init____mutmut_7 `if not is_floating_point(): double()` -> `if is_floating_point(): double()`: integer scores stay integer and float scores widen exactly; isfinite, sort and tie detection give the same order and ties either way.
#   benchmark.metrics.xǁRankingǁ__init____mutmut_22 torch.sort(dim=1) -> default dim: the default is the last dimension, which is 1 for the [Q, N] scores checked above.
#   detailclip.cover.x_grid_boxes__mutmut_13 ys over range(n + 1) -> range(n + 2): the extra edge is never read (boxes use ys[j], ys[j + 1] for j < n).
#   detailclip.cover.x_scheme_boxes__mutmut_38 torch.tensor(level_ids, dtype=long) -> dtype=None: a list of Python ints becomes int64 (= long) by default, and level_ids is never empty (level 0 is always there).
#   detailclip.cover.x_scheme_boxes__mutmut_40 torch.tensor(level_ids, dtype=long) -> no dtype: as mutmut_38.
#   benchmark.buckets.x_assign_buckets__mutmut_4 clip(..., hi=buckets[-1].hi) -> no upper bound: the last bucket takes every scale >= its lo (`| (b == len(buckets) - 1)`), so clipping from above changes no index.
#   benchmark.buckets.x_assign_buckets__mutmut_9 asarray(scales, dtype=float64) -> dtype=None: np.clip with float bounds returns float64 anyway, and NaN stays NaN.
#   benchmark.buckets.x_assign_buckets__mutmut_11 asarray(scales, dtype=float64) -> no dtype: as mutmut_9.
#   benchmark.buckets.x_assign_buckets__mutmut_18 np.full(-1, dtype=int64) -> dtype=None: numpy's default integer for -1 is int64 on the 64-bit platforms the project supports.
#   benchmark.buckets.x_assign_buckets__mutmut_21 np.full(-1, dtype=int64) -> no dtype: as mutmut_18.
#   detailclip.cover.x_axis_starts__mutmut_9 `while start + side < length` -> `<=`: a start that ends exactly at the border is appended twice, the count then differs and the even spread takes over, which gives the same starts; brute force over every (k <= 30, cell <= 399, cells) that complete_cover_boxes asks for found no difference.
#   detailclip.cover.x_complete_cover_boxes__mutmut_14 levels from range(1, k + 1) -> range(k + 1): the extra level n = 0 has one window, like level n = 1, so the collapse rule replaces it with the whole-image level.
#   benchmark.buckets.x_assign_buckets__mutmut_35 `out[inside & (out < 0)]` -> `(out <= 0)`: buckets are increasing and do not overlap (buckets_from_edges / parse_buckets refuse otherwise), so a scale already in bucket 0 is inside no later bucket.
#   benchmark.buckets.x_assign_buckets__mutmut_36 `(out < 0)` -> `(out < 1)`: as mutmut_35.
#   benchmark.protocol.xǁProtocolǁrelevance__mutmut_6 has_instance zeros(dtype=bool) -> dtype=None (float): it is only set to True and read by np.where, where 1.0 / 0.0 act as True / False.
#   benchmark.protocol.xǁProtocolǁrelevance__mutmut_8 has_instance zeros(dtype=bool) -> no dtype: as mutmut_6.
#   benchmark.protocol.xǁProtocolǁrelevance__mutmut_32 absent .astype(int8) -> .astype(None) (float64): absent only feeds the np.where calls of overall and per_bucket, whose results are cast to int8 again; -1 and 0 are exact in float64.
#   benchmark.uncertainty.x__cumulative__mutmut_3 zeros(..., rows.dtype) -> dtype None (float64): the running sums of whole-number counts are exact in float32 and float64 alike (a resample's counts sum to N < 2**24 images); the only change is that prec = tp / (tp + irrelevant) is rounded in float64 rather than float32, which moves replicates by a few 1e-9 at most (relative: 4e-9 over 1000 replicates of 2000 tied images), toward the exact AP; only a test asserting float32 rounding error itself could tell.
#   benchmark.uncertainty.x__cumulative__mutmut_5 zeros(..., rows.dtype) -> no dtype: as mutmut_3.
#   benchmark.uncertainty.x_weighted_map__mutmut_92 einsum("pc,pc->c") -> einsum("PC,PC->C"): einsum subscripts may be upper- or lower-case letters; the same contraction.
#   benchmark.sources.x_coco_source__mutmut_93 a.get("iscrowd", 0) -> a.get("iscrowd", None): the value is only read through bool(), and bool(None) and bool(0) are both False.
#   benchmark.sources.x_coco_source__mutmut_95 a.get("iscrowd", 0) -> a.get("iscrowd"): as mutmut_93 (dict.get's own default is None).
#   benchmark.sources.x_coco_source__mutmut_144 json.dumps(..., ensure_ascii=True) -> no ensure_ascii: True is json.dumps's default.
#   benchmark.sources.x_dota_source__mutmut_69 plain_name(label, "label name") -> plain_name(label, None): the label name is the stem of an image name that has just passed plain_name, plus ".txt"; that stem starts with a letter or digit, cannot end in "." (that needs ".." in the image name) and every image suffix has at least 4 characters, so the label name is plain and no longer: this check never fails and its wording is never shown.
#   benchmark.sources.x_dota_source__mutmut_71 plain_name(label, "label name") -> no second argument: as mutmut_69.
#   benchmark.sources.x_dota_source__mutmut_73 plain_name(label, "label name") -> "XXlabel nameXX": as mutmut_69.
#   benchmark.sources.x_dota_source__mutmut_74 plain_name(label, "label name") -> "LABEL NAME": as mutmut_69.
#   benchmark.sources.x__dota_name__mutmut_2 " ".join -> "XX XX".join: class names and label tokens go through the same function for the lookup; the pieces hold no whitespace, '_' or '-', so either join is injective and two names match under one exactly when they match under the other; the folded name is never shown (errors quote the raw token).
#   benchmark.sources.x__source__mutmut_15 min(scales, default=1.0) -> default=2.0: the default applies only without scales, where hi = min(max(default 1.0), 1.0) = 1.0 and lo >= hi gives no buckets with either default.
#   benchmark.sources.x__source__mutmut_24 min(max(scales, default=1.0), 1.0) -> default=2.0: min(2.0, 1.0) = 1.0, the same hi.

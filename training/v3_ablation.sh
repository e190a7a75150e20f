#!/usr/bin/env bash
# The 3,000-step ablations of v3's training (issue #21), from the finished first stage, and their
# comparison on the quality harness, reproducible from this one command on a 2-core CPU:
#
#     bash training/v3_ablation.sh [CONFIG ...]   # default: the four below; two run at a time
#     RESULT=model_v3_detail bash training/v3_ablation.sh v3-ft-scale-l2 v3-detail
#     RESULT=model_v3_phase bash training/v3_ablation.sh v3-detail v3-phase
#
#   v3-ft-l1       the first stage's loss, trained on (the control: what 3,000 more steps give)
#   v3-ft-l2       the same batches, the encoded distances squared (the loss, point 4)
#   v3-ft-scale    half the large photos shrunk to whole scenes (the training data's scale)
#   v3-ft-crop256  256 px crops, 4 a batch (context within a crop)
#
# Each run stops on a time budget with a checkpoint that resumes exactly (runs/NAME/checkpoint.pt;
# run the script again after an interruption). Then each is exported to runs/NAME/NAME.onnx and
# benchmarks.model_v3 compares them with v3, v2 and the classical methods on the same photos
# (one process per set, merged), writing benchmarks/results/$RESULT.md and .csv (default RESULT:
# model_v3_ablation, the four runs above; the second line: the combined fine-tune and the detail
# layers, model_v3_detail).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CHUNK_SECONDS=${CHUNK_SECONDS:-1800}
RESULT=${RESULT:-model_v3_ablation}
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(v3-ft-l1 v3-ft-l2 v3-ft-scale v3-ft-crop256)

train_one() {  # train config $1 to its planned steps, chunk after chunk
    CONFIG="training/configs/$1.toml" CHUNK_SECONDS="$CHUNK_SECONDS" bash training/v3_schedule.sh
}

for ((i = 0; i < ${#NAMES[@]}; i += 2)); do  # two at a time: one thread and one data worker each
    train_one "${NAMES[i]}" &
    [ $((i + 1)) -lt ${#NAMES[@]} ] && train_one "${NAMES[i + 1]}" &
    wait
done
CANDIDATES=()
for name in "${NAMES[@]}"; do
    "$PY" -m training.export "runs/$name/checkpoint.pt" "runs/$name/$name.onnx" --version "3-$name"
    CANDIDATES+=("runs/$name/$name.onnx")
done
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for set in kodak24 cbsd68; do
    "$PY" -m benchmarks.model_v3 --sections quality --sets "$set" --grid 0 --out-dir "$OUT" \
        --rows cross-channel inpaint-opposed v2 --candidate "${CANDIDATES[@]}" --csv "$OUT/$set.csv" &
done
wait
"$PY" -m benchmarks.model_v3 --merge "$OUT/kodak24.csv" "$OUT/cbsd68.csv" --out-dir "$OUT"
{
    echo "<!-- RESULT=$RESULT bash training/v3_ablation.sh ${NAMES[*]} (per set: python -m benchmarks.model_v3 --sections quality --sets SET --grid 0 --rows cross-channel inpaint-opposed v2 --candidate runs/NAME/NAME.onnx ... --csv SET.csv; then --merge) -->"
    echo
    sed 1d "$OUT/model_v3_quality.md"
} > "benchmarks/results/$RESULT.md"
cp "$OUT/model_v3.csv" "benchmarks/results/$RESULT.csv"
echo "written: benchmarks/results/$RESULT.md"

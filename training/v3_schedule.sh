#!/usr/bin/env bash
# Model v3's training, reproducible from this one command on a 2-core CPU:
#
#     bash training/v3_schedule.sh            # runs (or resumes) chunk after chunk until done
#     CONFIG=training/configs/v3-detail.toml bash training/v3_schedule.sh   # the detail stage (released)
#     CONFIG=training/configs/v3-sensor.toml bash training/v3_schedule.sh   # sensor samples (not released)
#     CONFIG=training/configs/v3-raw.toml bash training/v3_schedule.sh      # a RAW-only candidate (not released)
#
# Each chunk stops on a time budget with a checkpoint (runs/v3/checkpoint.pt) that resumes exactly;
# run it again after an interruption. CHUNK_SECONDS sets the chunk length (default 30 min).
# A fresh clone has no runs/v3: it resumes from the milestone kept in git,
# training/checkpoints/declipnet-v3.pt (the full checkpoint: weights, optimiser, step), so the
# schedule goes on exactly where the last session left it. training/v3_release.sh makes the model
# files (and refreshes that milestone) from the checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CHUNK_SECONDS=${CHUNK_SECONDS:-1800}
CONFIG=${CONFIG:-training/configs/v3.toml}
export CONFIG
# The milestone of each stage kept in git (full checkpoint), and the run folder it resumes in;
# other configs (the ablations of training/v3_ablation.sh) have none and start from init_from.
case "$CONFIG" in
    *v3-sensor.toml) MILESTONE=training/checkpoints/declipnet-v3-sensor.pt RUN=runs/v3-sensor ;;
    *v3-detail.toml) MILESTONE=training/checkpoints/declipnet-v3-detail.pt RUN=runs/v3-detail ;;
    *v3-raw.toml) MILESTONE=training/checkpoints/declipnet-v3-raw.pt RUN=runs/v3-raw ;;
    *v3.toml) MILESTONE=training/checkpoints/declipnet-v3.pt RUN=runs/v3 ;;
    *) MILESTONE="" RUN="" ;;
esac
if [ -n "$MILESTONE" ] && [ ! -f "$RUN/checkpoint.pt" ] && [ -f "$MILESTONE" ]; then
    mkdir -p "$RUN"
    cp "$MILESTONE" "$RUN/checkpoint.pt"
    echo "$CONFIG: resuming from the milestone $MILESTONE"
fi
until "$PY" - <<'PYEOF'
import os, sys, torch
from training.config import load_config
from pathlib import Path
cfg = load_config(os.environ["CONFIG"])
ck = Path(cfg.out_dir) / "checkpoint.pt"
done = ck.exists() and torch.load(ck, map_location="cpu", weights_only=True)["step"] >= cfg.steps
sys.exit(0 if done else 1)
PYEOF
do
    "$PY" -m training.train --config "$CONFIG" --max-seconds "$CHUNK_SECONDS"
done
echo "training done ($CONFIG)${RUN:+: $RUN/checkpoint.pt}"

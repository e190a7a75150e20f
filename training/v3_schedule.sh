#!/usr/bin/env bash
# Model v3's training, reproducible from this one command on a 2-core CPU:
#
#     bash training/v3_schedule.sh            # runs (or resumes) chunk after chunk until done
#
# Each chunk stops on a time budget with a checkpoint (runs/v3/checkpoint.pt) that resumes exactly;
# run it again after an interruption. CHUNK_SECONDS sets the chunk length (default 30 min).
# At milestones the checkpoint is copied to training/checkpoints/declipnet-v3.pt for git.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CHUNK_SECONDS=${CHUNK_SECONDS:-1800}
until "$PY" - <<'PYEOF'
import sys, torch
from training.config import load_config
from pathlib import Path
cfg = load_config("training/configs/v3.toml")
ck = Path(cfg.out_dir) / "checkpoint.pt"
done = ck.exists() and torch.load(ck, map_location="cpu", weights_only=True)["step"] >= cfg.steps
sys.exit(0 if done else 1)
PYEOF
do
    "$PY" -m training.train --config training/configs/v3.toml --max-seconds "$CHUNK_SECONDS"
done
echo "v3 training done: runs/v3/checkpoint.pt"

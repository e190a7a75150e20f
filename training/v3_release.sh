#!/usr/bin/env bash
# Model v3's files from its training run (after training/v3_schedule.sh):
#
#     bash training/v3_release.sh [CHECKPOINT]      # default runs/v3/checkpoint.pt
#
# writes libdeclip/models/declipnet-v3{,-int8,-fp16}.onnx (and their SHA256SUMS lines), the
# ablation training/checkpoints/v3_ablation/v3_base.onnx (the same model with its last layer at
# zero: its classical base), and the checkpoint for git under its run's name,
# training/checkpoints/declipnet-NAME.pt (declipnet-v3.pt for the first stage's run,
# declipnet-v3-detail.pt for the detail stage's: the files released on 2026-12-03). So the first
# stage's milestone, which v3_schedule.sh resumes and the later stages' configs start from, is
# never replaced by a later stage's checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CKPT=${1:-runs/v3/checkpoint.pt}
MODELS=libdeclip/models
"$PY" -m training.export "$CKPT" "$MODELS/declipnet-v3.onnx" --version 3
"$PY" -m training.quantize "$MODELS/declipnet-v3.onnx" --int8 "$MODELS/declipnet-v3-int8.onnx" \
    --fp16 "$MODELS/declipnet-v3-fp16.onnx"
mkdir -p training/checkpoints/v3_ablation
BASE=$(mktemp --suffix=.pt)
trap 'rm -f "$BASE"' EXIT
"$PY" - "$CKPT" "$BASE" <<'PYEOF'
import sys, torch
ck = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
# the last layers of the body and (layout "prior-detail") of the detail layers
for key in ("body.head.weight", "body.head.bias", "detail.2.weight", "detail.2.bias"):
    if key in ck["generator"]:
        ck["generator"][key] = torch.zeros_like(ck["generator"][key])
torch.save(ck, sys.argv[2])
PYEOF
"$PY" -m training.export "$BASE" training/checkpoints/v3_ablation/v3_base.onnx --version 3-base
NAME=$("$PY" -c "import sys, torch; print(torch.load(sys.argv[1], map_location='cpu', weights_only=True)['config']['name'])" "$CKPT")
KEPT=training/checkpoints/declipnet-$NAME.pt
[ "$(realpath "$CKPT")" = "$(realpath -m "$KEPT")" ] || cp "$CKPT" "$KEPT"
(cd "$MODELS" && sha256sum -- *.onnx > SHA256SUMS)
echo "v3 released: $MODELS/declipnet-v3*.onnx"

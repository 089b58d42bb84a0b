#!/usr/bin/env bash
# `make pipeline`: the whole loop in miniature on synthetic data, with the project's own commands:
#   synthesize data -> train a tiny Min2Real -> export its sim graph to ONNX -> evaluate it open loop
#   -> write a synthetic CARLA-bridge bag -> replay the bag through the driver and controller nodes.
# Knobs (environment): OUT (default out/pipeline), FRAMES (labelled training frames per domain,
# default 64), EPOCHS (default 2), BAG_FRAMES (default 60). The bundled model was made with
#   OUT=out/bundle FRAMES=200 EPOCHS=4 bash scripts/pipeline.sh
# (see models/bundled/README.md). A few minutes on 2 cores with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ros_env.sh
export TIMM_FUSED_ATTN=0

OUT=${OUT:-out/pipeline}
FRAMES=${FRAMES:-64}
EPOCHS=${EPOCHS:-2}
BAG_FRAMES=${BAG_FRAMES:-60}
M=".venv/bin/min2real"

if [[ -e "$OUT" ]]; then
  echo "pipeline: $OUT exists; remove it or set OUT=... (the pipeline never overwrites a run)" >&2
  exit 1
fi
echo "== 1/6 synthetic data ($FRAMES labelled frames per domain, tiny sizes) -> $OUT/synth"
$M data synth --out "$OUT/synth/train" --seed 0 --frames "$FRAMES" --tiny
$M data synth --out "$OUT/synth/val" --seed 1 --frames 64 --tiny
echo "== 2/6 train the tiny Min2Real ($EPOCHS epochs, training/tiny.yaml) -> $OUT/run"
$M train --config training/tiny.yaml --out "$OUT/run" \
  --set "train.epochs=$EPOCHS" \
  --set "data.sim_roots=[$OUT/synth/train/carla]" --set "data.real_roots=[$OUT/synth/train/navsim]" \
  --set "data.val_sim_roots=[$OUT/synth/val/carla]" --set "data.val_real_roots=[$OUT/synth/val/navsim]"
echo "== 3/6 export the sim graph (V2R adapter included) to ONNX with its metadata"
$M export --checkpoint "$OUT/run/checkpoints/last.pt" --domain sim --out "$OUT/model_sim.onnx" --verify-data "$OUT/synth/val"
echo "== 4/6 open-loop evaluation on the validation drive"
$M eval --model "$OUT/model_sim.onnx" --data "$OUT/synth/val" --out "$OUT/eval"
echo "== 5/6 synthetic CARLA-bridge bag"
$M synth-bag --out "$OUT/bag" --frames "$BAG_FRAMES" --seed 0
echo "== 6/6 replay the bag through the nodes with the new model"
$M replay "$OUT/bag" --model "$OUT/model_sim.onnx" --out "$OUT/replay" --timing fast
echo "pipeline: done; model $OUT/model_sim.onnx, evaluation $OUT/eval/report.md, replay $OUT/replay/summary.json"

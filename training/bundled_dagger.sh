#!/usr/bin/env bash
# The bundled model's whole training chain (models/bundled/README.md): expert data in the traffic
# world, a first model, then closed-loop data aggregation (DAgger, `min2real dagger`) on training
# towns only, each round fine-tuned from the previous model on the aggregate. Every choice along
# the way was made on synth-val; synth-longest6 is driven once, by the shipped model, at the end.
# About 1.5 h on 2 CPU cores. Run from the repository root with the environment active
# (`source .venv/bin/activate`); RUNS and DATA may be overridden.
#
#   round   data added (sim look, expert labels at the visited states)     from       speed input
#   r0      data/bundled/train: 4000 expert frames, 40 routes (seed 10)   scratch    yes
#   r1      dagger r1: r0 drives seed-10 towns, beta 0.5                  r0         yes
#   ns1     (no new data: r1's aggregate)                                  r1         no
#   r2      dagger r2: r1 drives seed-20 towns, beta 0.25                  -          -
#   ns2     dagger r2ns: ns1 drives seed-21 towns, beta 0.25               ns1        no   <- shipped
set -euo pipefail
RUNS=${RUNS:-runs/bundled_chain}
DATA=${DATA:-data}
CAMERA=256x96@100  # the synthetic world's tiny camera (export's source camera)
STEPS=(--set train.max_steps=2400 --set train.warmup_steps=50)

min2real data synth --out "$DATA/bundled/train" --seed 10 --tiny --frames 4000 --routes 40 --conditions all --obstacles 0.25
min2real data synth --out "$DATA/bundled/val" --seed 11 --tiny --frames 240 --routes 6 --conditions all --obstacles 0.25
min2real data synth --out "$DATA/bundled/test" --seed 12 --tiny --frames 320 --routes 6 --conditions all --obstacles 0.25

sim_roots() { local IFS=,; echo "data.sim_roots=[$*]"; }
export_sim() { min2real export --checkpoint "$RUNS/$1/checkpoints/best.pt" --domain sim --source-camera $CAMERA --out "$RUNS/$1/sim.onnx"; }
TRAIN="$DATA/bundled/train/carla"

min2real train --config training/bundled.yaml --out "$RUNS/r0"
export_sim r0
min2real dagger --model "$RUNS/r0/sim.onnx" --out "$DATA/dagger/r1" --seed 10 --routes 12 --round 1 --conditions all --obstacles 0.25 --speed-from head

min2real train --config training/bundled.yaml --out "$RUNS/r1" "${STEPS[@]}" \
    --set "$(sim_roots "$TRAIN" "$DATA/dagger/r1/carla")" --set train.init_checkpoint="$RUNS/r0/checkpoints/best.pt"
export_sim r1
min2real dagger --model "$RUNS/r1/sim.onnx" --out "$DATA/dagger/r2" --seed 20 --routes 16 --round 2 --conditions all --obstacles 0.25 --speed-from head

min2real train --config training/bundled.yaml --out "$RUNS/ns1" "${STEPS[@]}" --set model.use_speed_input=false \
    --set "$(sim_roots "$TRAIN" "$DATA/dagger/r1/carla")" --set train.init_checkpoint="$RUNS/r1/checkpoints/best.pt"
export_sim ns1
min2real dagger --model "$RUNS/ns1/sim.onnx" --out "$DATA/dagger/r2ns" --seed 21 --routes 16 --round 2 --conditions all --obstacles 0.25 --speed-from head

min2real train --config training/bundled.yaml --out "$RUNS/ns2" "${STEPS[@]}" --set model.use_speed_input=false \
    --set "$(sim_roots "$TRAIN" "$DATA/dagger/r1/carla" "$DATA/dagger/r2/carla" "$DATA/dagger/r2ns/carla")" \
    --set train.init_checkpoint="$RUNS/ns1/checkpoints/best.pt"
export_sim ns2
min2real export --checkpoint "$RUNS/ns2/checkpoints/best.pt" --domain real --source-camera $CAMERA --out "$RUNS/ns2/real.onnx"
for run in r0 r1 ns1 ns2; do  # the per-round synth-val scores of the card
    for speed in head waypoints; do
        min2real closed-loop --model "$RUNS/$run/sim.onnx" --routes synth-val --domain sim --speed-from $speed --out "$RUNS/$run/synth-val-$speed" --tiles 0
    done
done

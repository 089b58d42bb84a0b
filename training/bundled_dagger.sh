#!/usr/bin/env bash
# The bundled model's whole training chain (models/bundled/README.md): expert data in the traffic
# world, a first model, then closed-loop data aggregation (DAgger, `min2real dagger`) on training
# towns only, each round fine-tuned from the previous model on the aggregate. Every choice along
# the way was made on synth-val; synth-longest6 is driven once, by the shipped model, at the end.
# About 4.5 h on 2 CPU cores (card: time to train). Run from the repository root with the environment active
# (`source .venv/bin/activate`); RUNS and DATA may be overridden.
#
#   round   data added (sim look, expert labels at the visited states)     from       speed input
#   r0      data/bundled/train: 4000 expert frames, 40 routes (seed 10)   scratch    yes
#   r1      dagger r1: r0 drives seed-10 towns, beta 0.5                  r0         yes
#   ns1     (no new data: r1's aggregate)                                  r1         no
#   r2      dagger r2: r1 drives seed-20 towns, beta 0.25                  -          -
#   ns2     dagger r2ns: ns1 drives seed-21 towns, beta 0.25               ns1        no
# From here on {S, R} (variant mix_min2real): the real-look frames train the driving heads too
# (data.real_driving_labels, NAVSIM-layout expert drives with the route-like future_path target
# point), and real-look DAgger rounds (`dagger --look real`, the real graph driving) add real
# driving labels at the states the real graph visits (data.real_look_roots).
#   ns2r    (no new data: ns2's aggregate) + real driving labels              ns2        no
#   ns3     + dagger r3: ns2 drives seed-22 towns, beta 0.125                  ns2r       no
#   ns3r    + real-look dagger real_r1: ns2r's real graph, seed-30 real towns, beta 0.5      ns3
#   ns4     + dagger r4 (ns3, seed 23) and r5 (ns3r, seed 24, every route past a parked car),
#           real-look real_r2 / real_r3 (ns3r's real graph, seeds 31 / 32, beta 0.25)     ns3r
#   ns6d    + dagger r6 (ns4, seed 25, parked-car routes), r7 (ns4, seed 26, beta 0.0625) and
#           real-look real_r4 / real_r5 (ns4's real graph, seeds 33 / 34); sim:real 2:1    ns4
#   ns7     + dagger r8 (ns6d, seed 27) and real-look real_r6 (ns6d's real graph, seed 35)  ns6d   <- shipped
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

export_real() { min2real export --checkpoint "$RUNS/$1/checkpoints/best.pt" --domain real --source-camera $CAMERA --out "$RUNS/$1/real.onnx"; }
SR=(--set model.variant=mix_min2real --set data.real_driving_labels=true --set data.real_target_point=future_path)
real_look_roots() { local IFS=,; echo "data.real_look_roots=[$*]"; }
NS2_SIM=("$TRAIN" "$DATA/dagger/r1/carla" "$DATA/dagger/r2/carla" "$DATA/dagger/r2ns/carla")
min2real train --config training/bundled.yaml --out "$RUNS/ns2r" "${STEPS[@]}" "${SR[@]}" --set model.use_speed_input=false \
    --set "$(sim_roots "${NS2_SIM[@]}")" --set train.init_checkpoint="$RUNS/ns2/checkpoints/best.pt"
export_sim ns2r
export_real ns2r
min2real dagger --model "$RUNS/ns2/sim.onnx" --out "$DATA/dagger/r3" --seed 22 --routes 20 --round 3 --conditions all --obstacles 0.25 --speed-from waypoints

min2real train --config training/bundled.yaml --out "$RUNS/ns3" "${STEPS[@]}" "${SR[@]}" --set model.use_speed_input=false \
    --set "$(sim_roots "${NS2_SIM[@]}" "$DATA/dagger/r3/carla")" --set train.init_checkpoint="$RUNS/ns2r/checkpoints/best.pt"
export_sim ns3
min2real dagger --model "$RUNS/ns2r/real.onnx" --look real --out "$DATA/dagger/real_r1" --seed 30 --routes 20 --round 1 --conditions all --obstacles 0.25 --speed-from waypoints
min2real dagger --model "$RUNS/ns3/sim.onnx" --out "$DATA/dagger/r4" --seed 23 --routes 20 --round 3 --conditions all --obstacles 0.25 --speed-from waypoints

min2real train --config training/bundled.yaml --out "$RUNS/ns3r" "${STEPS[@]}" "${SR[@]}" --set model.use_speed_input=false \
    --set "$(sim_roots "${NS2_SIM[@]}" "$DATA/dagger/r3/carla")" --set "$(real_look_roots "$DATA/dagger/real_r1/real_look")" \
    --set train.init_checkpoint="$RUNS/ns3/checkpoints/best.pt"
export_sim ns3r
export_real ns3r
min2real dagger --model "$RUNS/ns3r/real.onnx" --look real --out "$DATA/dagger/real_r2" --seed 31 --routes 20 --round 2 --conditions all --obstacles 0.25 --speed-from waypoints
min2real dagger --model "$RUNS/ns3r/sim.onnx" --out "$DATA/dagger/r5" --seed 24 --routes 20 --round 3 --conditions all --obstacles 1.0 --speed-from waypoints
min2real dagger --model "$RUNS/ns3r/real.onnx" --look real --out "$DATA/dagger/real_r3" --seed 32 --routes 20 --round 2 --conditions all --obstacles 0.5 --speed-from waypoints

min2real train --config training/bundled.yaml --out "$RUNS/ns4" "${STEPS[@]}" "${SR[@]}" --set model.use_speed_input=false \
    --set "$(sim_roots "${NS2_SIM[@]}" "$DATA/dagger/r3/carla" "$DATA/dagger/r4/carla" "$DATA/dagger/r5/carla")" \
    --set "$(real_look_roots "$DATA/dagger/real_r1/real_look" "$DATA/dagger/real_r2/real_look" "$DATA/dagger/real_r3/real_look")" \
    --set train.init_checkpoint="$RUNS/ns3r/checkpoints/best.pt"
export_sim ns4
export_real ns4
# ns4 drives four more rounds' recordings: r6 / real_r4 with the waypoints' speed (then the
# default), r7 / real_r5 with the controller's new default speed_from waypoints_head_stop.
min2real dagger --model "$RUNS/ns4/sim.onnx" --out "$DATA/dagger/r6" --seed 25 --routes 20 --round 3 --conditions all --obstacles 1.0 --speed-from waypoints
min2real dagger --model "$RUNS/ns4/real.onnx" --look real --out "$DATA/dagger/real_r4" --seed 33 --routes 20 --round 2 --conditions all --obstacles 0.5 --speed-from waypoints
min2real dagger --model "$RUNS/ns4/sim.onnx" --out "$DATA/dagger/r7" --seed 26 --routes 20 --round 4 --conditions all --obstacles 0.5
min2real dagger --model "$RUNS/ns4/real.onnx" --look real --out "$DATA/dagger/real_r5" --seed 34 --routes 20 --round 3 --conditions all --obstacles 0.5
# ns6d: the whole aggregate, sim:real draws 2:1 (the candidates on this aggregate: 3:1 from
# ns4, 1:1 from ns4, 1:1 from the 3:1 model; card), from ns4.
min2real train --config training/bundled.yaml --out "$RUNS/ns6d" "${STEPS[@]}" "${SR[@]}" --set model.use_speed_input=false \
    --set data.sim_real_ratio=2.0 \
    --set "$(sim_roots "${NS2_SIM[@]}" "$DATA/dagger/r3/carla" "$DATA/dagger/r4/carla" "$DATA/dagger/r5/carla" "$DATA/dagger/r6/carla" "$DATA/dagger/r7/carla")" \
    --set "$(real_look_roots "$DATA/dagger/real_r1/real_look" "$DATA/dagger/real_r2/real_look" "$DATA/dagger/real_r3/real_look" "$DATA/dagger/real_r4/real_look" "$DATA/dagger/real_r5/real_look")" \
    --set train.init_checkpoint="$RUNS/ns4/checkpoints/best.pt"
export_sim ns6d
export_real ns6d
# ns7 (shipped): one more round from ns6d, both looks, the same 2:1 draws.
min2real dagger --model "$RUNS/ns6d/sim.onnx" --out "$DATA/dagger/r8" --seed 27 --routes 20 --round 4 --conditions all --obstacles 0.5
min2real dagger --model "$RUNS/ns6d/real.onnx" --look real --out "$DATA/dagger/real_r6" --seed 35 --routes 20 --round 3 --conditions all --obstacles 0.5
min2real train --config training/bundled.yaml --out "$RUNS/ns7" "${STEPS[@]}" "${SR[@]}" --set model.use_speed_input=false \
    --set data.sim_real_ratio=2.0 \
    --set "$(sim_roots "${NS2_SIM[@]}" "$DATA/dagger/r3/carla" "$DATA/dagger/r4/carla" "$DATA/dagger/r5/carla" "$DATA/dagger/r6/carla" "$DATA/dagger/r7/carla" "$DATA/dagger/r8/carla")" \
    --set "$(real_look_roots "$DATA/dagger/real_r1/real_look" "$DATA/dagger/real_r2/real_look" "$DATA/dagger/real_r3/real_look" "$DATA/dagger/real_r4/real_look" "$DATA/dagger/real_r5/real_look" "$DATA/dagger/real_r6/real_look")" \
    --set train.init_checkpoint="$RUNS/ns6d/checkpoints/best.pt"
export_sim ns7
export_real ns7
for run in r0 r1 ns1 ns2; do  # the per-round synth-val scores of the card
    for speed in head waypoints; do
        min2real closed-loop --model "$RUNS/$run/sim.onnx" --routes synth-val --domain sim --speed-from $speed --out "$RUNS/$run/synth-val-$speed" --tiles 0
    done
done
for run in ns2r ns3 ns3r ns4; do
    min2real closed-loop --model "$RUNS/$run/sim.onnx" --routes synth-val --domain sim --speed-from waypoints --out "$RUNS/$run/synth-val-sim" --tiles 0
done
for run in ns2r ns3r ns4; do
    min2real closed-loop --model "$RUNS/$run/real.onnx" --routes synth-val --domain real --speed-from waypoints --out "$RUNS/$run/synth-val-real" --tiles 0
done
for run in ns4 ns6d ns7; do  # the controller's default (waypoints_head_stop), both looks
    min2real closed-loop --model "$RUNS/$run/sim.onnx" --routes synth-val --domain sim --out "$RUNS/$run/synth-val-sim-head-stop" --tiles 0
    min2real closed-loop --model "$RUNS/$run/real.onnx" --routes synth-val --domain real --out "$RUNS/$run/synth-val-real-head-stop" --tiles 0
done

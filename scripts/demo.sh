#!/usr/bin/env bash
# README command 1 (`make demo` runs scripts/setup_env.sh first): write a synthetic CARLA-bridge
# rosbag, replay it through the real driver and controller nodes with the bundled model, print
# where the outputs are and the summary, then drive one synthetic route closed loop through the
# same nodes (lock step) and print its driving score. About 35 s on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ros_env.sh
exec .venv/bin/min2real demo --out "${DEMO_OUT:-out/demo}" "$@"

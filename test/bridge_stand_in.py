"""Stand-in for the CARLA ROS bridge executables that need a CARLA server (carla_ros_bridge's
`bridge`, `carla_spawn_objects`, `carla_waypoint_publisher`): the one part of carla_sim.launch.py
that cannot run here. Started by the bridge's real launch files (through a test prefix whose
lib/<pkg>/<executable> is this script), it takes the node name, remappings and parameters exactly
as launch_ros passes them, writes them as JSON to $MIN2REAL_STAND_IN_DIR/<executable>.json, and
spins until SIGINT or SIGTERM, as the real node would.

It takes the signals itself (rclpy's handlers off) and spins in short steps until one arrives. A
test stops the launch by signalling its whole process group, so the stand-in gets SIGINT from the
test and again from launch, maybe right after writing its report. In one CI run (2026-12-07) the
launch did not stop within 20 s because this stand-in, then ending through rclpy's own signal
handling, never exited (its launch log shows every other process finishing); with a flag set by
the signal and checked between spin steps, nothing in rclpy's signal path can keep it running.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path


def main() -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    executable = Path(sys.argv[0]).name
    rclpy.init(args=sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    node = Node(f"{executable}_stand_in", automatically_declare_parameters_from_overrides=True)
    report = {
        "executable": executable,
        "package": Path(sys.argv[0]).parent.name,
        "node": node.get_fully_qualified_name(),
        "parameters": {name: parameter.value for name, parameter in node._parameters.items()},
        "argv": sys.argv[1:],
    }
    target = Path(os.environ["MIN2REAL_STAND_IN_DIR"]) / f"{executable}.json"
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(report, default=list))
    os.replace(partial, target)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

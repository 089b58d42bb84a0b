"""Stand-in for the CARLA ROS bridge executables that need a CARLA server (carla_ros_bridge's
`bridge`, `carla_spawn_objects`, `carla_waypoint_publisher`): the one part of carla_sim.launch.py
that cannot run here. Started by the bridge's real launch files (through a test prefix whose
lib/<pkg>/<executable> is this script), it takes the node name, remappings and parameters exactly
as launch_ros passes them, writes them as JSON to $MIN2REAL_STAND_IN_DIR/<executable>.json, and
spins until SIGINT, as the real node would.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    import rclpy
    from rclpy.node import Node

    executable = Path(sys.argv[0]).name
    rclpy.init(args=sys.argv)
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
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""ROS mode of the closed-loop simulator: the CARLA ROS bridge's topics, the real nodes, lock step.

`bridge.BridgeSimNode` publishes what the bridge publishes and hears the controller's command;
`stack.RosStack` runs one route through driver_node and controller_node started from their
console scripts (`stack.node_commands` names their parameters and topics in one place).
The simulator itself is min2real.evaluation.closed_loop (ROS-free).
"""

from min2real_ros.sim.bridge import BridgeSimNode
from min2real_ros.sim.stack import LockStepError, LockStepTiming, RosStack, RosStackFactory, node_commands

__all__ = ["BridgeSimNode", "LockStepError", "LockStepTiming", "RosStack", "RosStackFactory", "node_commands"]

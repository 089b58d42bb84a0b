"""rclpy and the message packages are part of the environment: these tests fail (never skip) without them."""

from __future__ import annotations

import os
import threading
import time

import pytest


def test_discovery_stays_on_loopback():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert os.environ["ROS_LOCALHOST_ONLY"] == "1"
    assert os.environ.get("ROS_LOG_DIR")


def test_message_packages_import():
    import diagnostic_msgs.msg  # noqa: F401
    import geometry_msgs.msg  # noqa: F401
    import lifecycle_msgs.msg  # noqa: F401
    import nav_msgs.msg  # noqa: F401
    import rclpy  # noqa: F401
    import sensor_msgs.msg  # noqa: F401
    import std_msgs.msg  # noqa: F401
    import visualization_msgs.msg  # noqa: F401


@pytest.mark.ros
def test_publish_and_receive_with_real_rclpy(ros_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_msgs.msg import String

    talker = Node("min2real_test_talker", context=ros_context)
    listener = Node("min2real_test_listener", context=ros_context)
    received: list[str] = []
    listener.create_subscription(String, "min2real_test_chatter", lambda msg: received.append(msg.data), 10)
    publisher = talker.create_publisher(String, "min2real_test_chatter", 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(talker)
    executor.add_node(listener)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    deadline = time.monotonic() + 10.0
    while not received and time.monotonic() < deadline:
        publisher.publish(String(data="hello min2real"))
        time.sleep(0.05)
    executor.shutdown()
    talker.destroy_node()
    listener.destroy_node()
    assert received and received[0] == "hello min2real"

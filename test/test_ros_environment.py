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


def test_the_shipped_dds_profile_is_active_and_has_a_large_shared_memory_segment():
    import xml.etree.ElementTree as ElementTree
    from pathlib import Path

    profile = Path(os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"])
    assert profile.name == "fastdds_large_data.xml" and profile.is_file()
    namespace = {"dds": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ElementTree.parse(profile).getroot()
    shm = [
        d
        for d in root.iterfind(".//dds:transport_descriptor", namespace)
        if d.findtext("dds:type", namespaces=namespace) == "SHM"
    ]
    assert len(shm) == 1
    segment_bytes = int(shm[0].findtext("dds:segment_size", namespaces=namespace))
    assert segment_bytes >= 4 * 6 * 1024 * 1024  # several 6 MB images in flight (Fast DDS default: 512 KB)
    participant = root.find(".//dds:participant[@is_default_profile='true']", namespace)
    assert participant is not None


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

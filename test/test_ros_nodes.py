"""In-process rclpy graphs: driver and controller nodes with CARLA-bridge-style messages.

The driver uses a deterministic test-double policy (ros_graph_helpers.CurveToTargetPolicy);
test_ros_real_model.py runs the same graph with a real exported model.
"""

from __future__ import annotations

import numpy as np
import pytest
from ros_graph_helpers import CurveToTargetPolicy, Graph, driver_parameters, wait_for

from min2real.contract import STEER_LEFT, TINY_CONTRACT

pytestmark = pytest.mark.ros


@pytest.fixture
def graph(ros_context, request):
    graph = Graph(ros_context, request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:40])
    yield graph
    graph.close()


def _statuses(harness, name_part):
    with harness.lock:
        return [status for array in harness.diagnostics for status in array.status if name_part in status.name]


def _value(status, key):
    return {kv.key: kv.value for kv in status.values}.get(key)


def test_driver_publishes_contract_path_in_base_link_with_camera_stamp(graph):
    from diagnostic_msgs.msg import DiagnosticStatus

    driver, policy = graph.driver()
    harness = graph.harness
    harness.publish_route()
    assert wait_for(lambda: len(harness.paths) >= 3, 8.0, step=harness.publish_inputs, period_s=0.1), (
        f"no Path from the driver; diagnostics: {driver.diagnostic_status().message}"
    )
    with harness.lock:
        path, steer, sent = harness.paths[-1], list(harness.steer), set(harness.sent_stamps)
    assert len(path.poses) == TINY_CONTRACT.num_waypoints
    assert path.header.frame_id == "base_link"
    assert (path.header.stamp.sec, path.header.stamp.nanosec) in sent  # the camera image's stamp
    ys = np.array([pose.pose.position.y for pose in path.poses])
    assert ys[-1] > 0  # the route turns left: REP 103 y left
    assert steer and steer[-1].data == STEER_LEFT
    frame = policy.frames[-1]
    assert frame.image_rgb.shape == (64, 160, 3)
    assert frame.lidar_points_ego is not None and frame.lidar_points_ego.shape[1] == 3
    # LiDAR points moved to base_link by the mount (z + 2.5 m): the sensor's ground at -2.4..0 ends above -0.01.
    assert frame.lidar_points_ego[:, 2].min() > 0.0
    assert frame.speed_mps == pytest.approx(3.0)
    assert frame.target_point_ego[0] > 5.0 and frame.target_point_ego[1] > 0.0
    assert wait_for(lambda: harness.processing, 2.0)
    assert all(np.isfinite(msg.data) for msg in harness.processing)
    assert wait_for(
        lambda: any(s.level == DiagnosticStatus.OK for s in _statuses(harness, "driving policy")),
        3.0,
        step=harness.publish_inputs,
        period_s=0.1,
    )
    ok = [s for s in _statuses(harness, "driving policy") if s.level == DiagnosticStatus.OK][-1]
    assert _value(ok, "backend") == "test-double" and _value(ok, "model_variant") == "test-double"
    assert float(_value(ok, "camera_rate_hz")) > 0


def test_left_curving_path_into_controller_gives_negative_carla_steer(graph):
    from std_msgs.msg import Float32

    controller = graph.controller()
    harness = graph.harness
    s = 3.0 * np.arange(1, 9)
    radius = 12.0
    left_arc = np.stack([radius * np.sin(s / radius), radius * (1 - np.cos(s / radius))], axis=1)

    def publish():
        harness.speed_pub.publish(Float32(data=4.0))
        harness.path_pub.publish(harness.path_msg(left_arc, "base_link", harness.now_msg()))

    assert wait_for(lambda: controller.watchdog_reason is None and controller.last_control.steer < 0, 5.0, step=publish)
    assert controller.last_control.steer < 0  # CARLA convention: positive = right
    assert wait_for(lambda: harness.twists and harness.twists[-1].angular.z > 0, 3.0, step=publish)
    assert harness.twists[-1].linear.x > 0  # REP 103 twist: turning left is positive yaw rate


def test_controller_rejects_waypoints_that_are_not_in_the_vehicle_frame(graph):
    from std_msgs.msg import Float32

    controller = graph.controller()
    harness = graph.harness
    left_arc = np.stack([3.0 * np.arange(1, 9), 0.3 * np.arange(1, 9) ** 2], axis=1)

    def publish_map_frame():
        harness.speed_pub.publish(Float32(data=4.0))
        harness.path_pub.publish(harness.path_msg(left_arc, "map", harness.now_msg()))

    assert wait_for(lambda: controller.malformed >= 2, 5.0, step=publish_map_frame)
    assert controller.watchdog_reason == "no waypoints yet"  # never steered at a map-frame path
    assert controller.last_control.brake == 1.0 and controller.last_control.throttle == 0.0


def test_stale_camera_gives_no_path_error_diagnostics_and_controller_brakes(graph):
    from diagnostic_msgs.msg import DiagnosticStatus

    driver, _ = graph.driver()
    controller = graph.controller()
    harness = graph.harness
    harness.publish_route()
    stale = lambda: harness.publish_inputs(camera_age_s=3.0)  # noqa: E731
    assert wait_for(
        lambda: any(s.level == DiagnosticStatus.ERROR for s in _statuses(harness, "driving policy")),
        5.0,
        step=stale,
        period_s=0.1,
    )
    errors = [s for s in _statuses(harness, "driving policy") if s.level == DiagnosticStatus.ERROR]
    assert "camera frame is" in errors[-1].message and "old" in errors[-1].message
    assert driver.rejected > 0 and driver.published == 0
    assert not harness.paths
    assert wait_for(lambda: harness.twists, 3.0)
    assert controller.last_control.brake == 1.0 and controller.last_control.throttle == 0.0
    assert harness.twists[-1].linear.x == 0.0 and harness.twists[-1].angular.z == 0.0
    assert wait_for(lambda: any(s.level == DiagnosticStatus.ERROR for s in _statuses(harness, "controller")), 3.0)


def test_malformed_messages_are_rejected_with_diagnostics_and_node_keeps_running(graph):
    from diagnostic_msgs.msg import DiagnosticStatus
    from std_msgs.msg import Float32

    driver, _ = graph.driver()
    harness = graph.harness
    harness.publish_route()
    stamp = harness.now_msg()
    bad_camera = [
        harness.camera_msg(stamp, encoding="yuv422"),
        harness.camera_msg(stamp, data=b"\x00" * 100),  # truncated
        harness.camera_msg(stamp, step=10),  # step smaller than a row
    ]
    bad_lidar = [
        harness.lidar_msg(stamp, data=b"\x00" * 40),  # truncated
        harness.lidar_msg(stamp, points=np.zeros((0, 3), np.float32)),  # empty
        harness.lidar_msg(stamp, fields=[]),  # no x/y/z
    ]
    for msg in bad_camera:
        harness.camera_pub.publish(msg)
    for msg in bad_lidar:
        harness.lidar_pub.publish(msg)
    harness.speed_pub.publish(Float32(data=float("nan")))
    assert wait_for(lambda: driver.malformed["camera"] >= 1 and driver.malformed["lidar"] >= 1, 5.0, period_s=0.1)
    # No valid camera frame arrived: ERROR, and the message names the malformed input.
    assert wait_for(
        lambda: any(
            s.level == DiagnosticStatus.ERROR and "malformed" in s.message for s in _statuses(harness, "driving policy")
        ),
        3.0,
    )
    warn = [s for s in _statuses(harness, "driving policy") if "malformed" in s.message][-1]
    assert int(_value(warn, "malformed_camera")) >= 1 and int(_value(warn, "malformed_lidar")) >= 1
    # Still alive: valid inputs produce a Path; a malformed cloud among valid frames is a WARN.
    assert wait_for(lambda: harness.paths, 8.0, step=harness.publish_inputs, period_s=0.1)

    def valid_and_one_bad_cloud():
        harness.publish_inputs()
        harness.lidar_pub.publish(harness.lidar_msg(harness.now_msg(), data=b"\x00" * 40))

    assert wait_for(
        lambda: any(
            s.level == DiagnosticStatus.WARN and "malformed input: lidar" in s.message
            for s in _statuses(harness, "driving policy")
        ),
        5.0,
        step=valid_and_one_bad_cloud,
        period_s=0.1,
    )


def test_model_that_cannot_load_fails_configure_with_a_clear_error(graph):
    from rclpy.lifecycle import TransitionCallbackReturn

    driver, _ = graph.driver(policy=CurveToTargetPolicy(domain="real"), activate=False)  # node asks for "sim"
    assert driver.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert "domain" in driver.configure_error and "'real'" in driver.configure_error

    def broken(model_path, domain, backend):
        raise FileNotFoundError(f"model file {model_path} does not exist")

    from min2real_ros.nodes.driver_node import DriverNode

    node = graph.add(
        DriverNode(
            policy_factory=broken,
            node_name="broken",
            namespace=f"/{graph.prefix}",
            context=graph.context,
            parameter_overrides=driver_parameters(graph.prefix),
        )
    )
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert "test-double.onnx does not exist" in node.configure_error


def test_compressed_camera_and_debug_outputs(graph):
    from sensor_msgs.msg import CompressedImage, Image
    from visualization_msgs.msg import MarkerArray

    from min2real_ros.conversions import rgb_to_jpeg_bytes, ros_uint8_array

    driver, policy = graph.driver(camera_compressed=True, remaps={"camera": f"/{graph.prefix}/camera/compressed"})
    harness = graph.harness
    compressed_pub = harness.node.create_publisher(CompressedImage, f"/{graph.prefix}/camera/compressed", 5)
    debug, markers = [], []
    harness.node.create_subscription(Image, f"/{graph.prefix}/driver/output/debug_image", debug.append, 5)
    harness.node.create_subscription(MarkerArray, f"/{graph.prefix}/driver/output/markers", markers.append, 5)
    harness.publish_route()
    jpeg = rgb_to_jpeg_bytes(np.full((64, 160, 3), 128, np.uint8))

    def publish():
        stamp = harness.now_msg()
        harness.lidar_pub.publish(harness.lidar_msg(stamp))
        harness.speed_pub.publish(harness.Float32(data=3.0))
        harness.odom_pub.publish(harness.odometry_msg(stamp))
        msg = CompressedImage(format="jpeg")
        msg.header.stamp = stamp
        msg.data = ros_uint8_array(jpeg)
        compressed_pub.publish(msg)

    assert wait_for(lambda: harness.paths and debug and markers, 8.0, step=publish, period_s=0.1)
    assert policy.frames[-1].image_rgb.shape == (64, 160, 3)
    assert debug[-1].encoding == "rgb8" and (debug[-1].height, debug[-1].width) == (64, 160)
    assert len(markers[-1].markers) == 2 and markers[-1].markers[0].header.frame_id == "base_link"


def test_controller_output_types_need_their_packages():
    import importlib.util

    from min2real_ros.nodes.controller_node import import_output_type

    assert import_output_type("twist").__name__ == "Twist"
    for output_type, package in (("carla", "carla_msgs"), ("ackermann", "ackermann_msgs")):
        if importlib.util.find_spec(package) is None:
            with pytest.raises(RuntimeError, match=f"output_type '{output_type}' needs the ROS package {package}"):
                import_output_type(output_type)
        else:
            assert import_output_type(output_type) is not None
    with pytest.raises(ValueError, match="expected one of"):
        import_output_type("cmd_vel")


def test_carla_msgs_hint_says_how_to_get_the_package_on_humble_and_jazzy():
    from min2real_ros.nodes.controller_node import CARLA_MSGS_HINT

    assert "not in the Humble/Jazzy distributions" in CARLA_MSGS_HINT
    assert "ros-carla-msgs" in CARLA_MSGS_HINT and "colcon build" in CARLA_MSGS_HINT
    assert "install ros-<distro>-carla-msgs" not in CARLA_MSGS_HINT  # that package does not exist

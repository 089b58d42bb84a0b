"""Node parameters over real rclpy: descriptors with ranges / allowed values / read_only, live changes
applied or refused with a reason, the mount source, and the controller's future-stamp refusal."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from ros_graph_helpers import Graph, driver_parameters, wait_for

pytestmark = pytest.mark.ros


@pytest.fixture
def graph(ros_context, request):
    graph = Graph(ros_context, request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:40])
    yield graph
    graph.close()


def _set(node, **values):
    from rclpy.parameter import Parameter

    return node.set_parameters([Parameter(name, value=value) for name, value in values.items()])[0]


def test_driver_descriptors_carry_ranges_allowed_values_and_read_only(graph):
    driver, _ = graph.driver()
    descriptors = {d.name: d for d in driver.describe_parameters(["max_image_age_s", "camera_qos", "model_path"])}
    age = descriptors["max_image_age_s"]
    assert age.floating_point_range and age.floating_point_range[0].from_value > 0 and not age.read_only
    assert "one of: reliable, best_effort" in descriptors["camera_qos"].additional_constraints
    assert not descriptors["model_path"].read_only  # configure-time: settable while unconfigured
    assert "configure-time" in descriptors["model_path"].description


def test_driver_applies_live_changes_and_refuses_bad_ones_with_a_reason(graph):
    driver, _ = graph.driver()
    result = _set(driver, max_image_age_s=0.8, negative_speed_tolerance_mps=0.1)
    assert result.successful
    assert (
        driver.assembler.limits.max_image_age_s == 0.8 and driver.assembler.limits.negative_speed_tolerance_mps == 0.1
    )
    refused = _set(driver, max_image_age_s=-1.0)
    assert not refused.successful and "max_image_age_s" in refused.reason
    assert driver.assembler.limits.max_image_age_s == 0.8  # unchanged
    crossed = _set(driver, rate_error_ratio=0.9)  # above rate_warn_ratio 0.8
    assert not crossed.successful and "rate_warn_ratio" in crossed.reason
    read_only = _set(driver, model_path="other.onnx")
    assert not read_only.successful and "active" in read_only.reason
    assert driver.get_parameter("model_path").value == "test-double.onnx"


def test_driver_configure_time_parameters_correctable_while_unconfigured_refused_after(graph):
    """A configure that fails on a wrong model path or domain is corrected over set_parameters and
    retried (as lifecycle nodes are used); inactive and active refuse the change with the reason."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from min2real_ros.cli.demo import bundled_model_path
    from min2real_ros.nodes.driver_node import DriverNode

    driver = graph.add(
        DriverNode(
            node_name="configure_time",
            namespace=f"/{graph.prefix}",
            context=graph.context,
            parameter_overrides=driver_parameters("", model_path="/no/such/model.onnx", backend="onnxruntime-cpu"),
        )
    )
    assert driver.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert "/no/such/model.onnx" in driver.configure_error
    assert _set(driver, model_path=str(bundled_model_path()), domain="real").successful  # unconfigured
    assert driver.trigger_configure() == TransitionCallbackReturn.FAILURE  # the bundled model is sim
    assert "domain" in driver.configure_error
    assert _set(driver, domain="sim").successful
    assert driver.trigger_configure() == TransitionCallbackReturn.SUCCESS, driver.configure_error
    for state, step in (("inactive", None), ("active", driver.trigger_activate)):
        if step is not None:
            assert step() == TransitionCallbackReturn.SUCCESS
        for name, value in (("model_path", "other.onnx"), ("backend", "torch"), ("domain", "real")):
            refused = _set(driver, **{name: value})
            assert not refused.successful and name in refused.reason and state in refused.reason, refused.reason
    assert driver.get_parameter("domain").value == "sim"
    assert driver.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert driver.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert _set(driver, backend="onnxruntime").successful  # unconfigured again


def test_driver_mount_source(graph):
    from rclpy.lifecycle import TransitionCallbackReturn

    driver, _ = graph.driver(mount_source="parameters", lidar_mount_pitch_deg=10.0)
    assert driver.mount_source == "parameters"
    np.testing.assert_allclose(driver._lidar_mount.translation_m, [0.0, 0.0, 2.5])
    assert driver._lidar_mount.pitch_rad == pytest.approx(np.radians(10.0))
    assert _set(driver, lidar_mount_x=1.2).successful and driver._lidar_mount.translation_m[0] == 1.2
    if importlib.util.find_spec("tf2_ros") is None:
        tf_driver, _ = graph.driver(activate=False, mount_source="tf")
        assert tf_driver.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "tf2_ros" in tf_driver.configure_error and "mount_source" in tf_driver.configure_error


def test_controller_refuses_future_stamped_paths_and_keeps_braking(graph):
    from std_msgs.msg import Float32

    controller = graph.controller(future_stamp_tolerance_s=0.1)
    harness = graph.harness
    arc = np.stack([3.0 * np.arange(1, 9), np.zeros(8)], axis=1)
    for ahead_s in (10.0, 3.0):

        def publish(ahead_s=ahead_s):
            harness.speed_pub.publish(Float32(data=4.0))
            harness.path_pub.publish(harness.path_msg(arc, "base_link", harness.now_msg(ahead_s)))

        before = controller.refused_future
        assert wait_for(lambda before=before: controller.refused_future >= before + 3, 5.0, step=publish)
        assert controller.watchdog_reason == "no waypoints yet" and controller.last_control.brake == 1.0
        assert "ahead of the controller clock" in controller.last_refusal

    def publish_now():
        harness.speed_pub.publish(Float32(data=4.0))
        harness.path_pub.publish(harness.path_msg(arc, "base_link", harness.now_msg()))

    assert wait_for(
        lambda: controller.watchdog_reason is None and controller.last_control.throttle > 0, 5.0, step=publish_now
    )
    # The Paths stop: braking starts once the last one is a timeout old by its receipt.
    assert wait_for(
        lambda: controller.last_control.brake == 1.0, 5.0, step=lambda: harness.speed_pub.publish(Float32(data=4.0))
    )
    assert "waypoints are" in controller.watchdog_reason
    refused = _set(controller, waypoint_timeout_s=0.0)
    assert not refused.successful and "waypoint_timeout_s" in refused.reason

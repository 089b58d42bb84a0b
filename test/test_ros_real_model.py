"""The driver node with a real exported model: tiny Min2Real 'sim' graph -> ONNX -> load_policy
(ONNX Runtime CPU) inside the node, fed CARLA-bridge-style messages over real rclpy."""

from __future__ import annotations

import os

os.environ.setdefault("TIMM_FUSED_ATTN", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ros_graph_helpers import Graph, wait_for  # noqa: E402

from min2real.contract import TINY_CONTRACT  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def exported_sim_model(tmp_path_factory):
    import torch

    from min2real.export import export_model
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config

    torch.manual_seed(0)
    model = build_model(variant_config("min2real", tiny=True), TINY_CONTRACT).eval()
    path = tmp_path_factory.mktemp("model") / "min2real_sim.onnx"
    export_model(model, TINY_CONTRACT, "sim", path, exporter="legacy", num_random=1)
    return path


def test_driver_with_exported_onnx_model_publishes_finite_contract_path(ros_context, exported_sim_model):
    from diagnostic_msgs.msg import DiagnosticStatus
    from rclpy.lifecycle import TransitionCallbackReturn
    from ros_graph_helpers import driver_parameters, driver_remaps

    from min2real_ros.nodes.driver_node import DriverNode

    graph = Graph(ros_context, "real_model")
    try:
        driver = DriverNode(
            node_name="driver",
            namespace="/real_model",
            context=ros_context,
            cli_args=driver_remaps("real_model"),
            parameter_overrides=driver_parameters(
                "real_model",
                model_path=str(exported_sim_model),
                max_image_age_s=2.0,
                max_lidar_skew_s=2.0,
                max_speed_age_s=2.0,
                max_target_age_s=2.0,
            ),
        )
        graph.add(driver)
        assert driver.trigger_configure() == TransitionCallbackReturn.SUCCESS, driver.configure_error
        assert driver.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert driver.policy.metadata.domain == "sim" and driver.policy.metadata.variant == "min2real"
        harness = graph.harness
        harness.publish_route()
        assert wait_for(lambda: len(harness.paths) >= 2, 20.0, step=harness.publish_inputs, period_s=0.2), (
            driver.diagnostic_status().message
        )
        with harness.lock:
            path, sent = harness.paths[-1], set(harness.sent_stamps)
        assert len(path.poses) == TINY_CONTRACT.num_waypoints and path.header.frame_id == "base_link"
        assert (path.header.stamp.sec, path.header.stamp.nanosec) in sent
        xy = np.array([[pose.pose.position.x, pose.pose.position.y] for pose in path.poses])
        assert np.isfinite(xy).all()
        assert harness.steer and harness.steer[-1].data in (0, 1, 2)
        status = driver.diagnostic_status()
        assert status.level != DiagnosticStatus.ERROR or "camera" in status.message
        values = {kv.key: kv.value for kv in status.values}
        assert values["backend"] == driver.policy.backend_name and values["model_domain"] == "sim"
        assert float(values["inference_ms_last"]) > 0
    finally:
        graph.close()

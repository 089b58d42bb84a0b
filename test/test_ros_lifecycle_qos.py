"""Driver node: lifecycle transitions, inference off the executor thread (latest-only, drops
counted), and the route subscription's QoS (latched delivery, incompatible publishers reported)."""

from __future__ import annotations

import threading
import time

import pytest
from ros_graph_helpers import CurveToTargetPolicy, Graph, left_turn_route_map, wait_for

pytestmark = pytest.mark.ros


@pytest.fixture
def graph(ros_context, request):
    graph = Graph(ros_context, request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:40])
    yield graph
    graph.close()


class ThreadRecordingPolicy(CurveToTargetPolicy):
    """Records the thread each predict() runs on; optionally slow (to make the worker busy)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.threads: set[str] = set()

    def predict(self, frame):
        self.threads.add(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().predict(frame)


def test_lifecycle_deactivate_activate_cleanup_configure(graph):
    from lifecycle_msgs.msg import State
    from rclpy.lifecycle import TransitionCallbackReturn

    driver, policy = graph.driver()
    harness = graph.harness
    harness.publish_route()
    assert wait_for(lambda: harness.paths, 8.0, step=harness.publish_inputs, period_s=0.1)

    assert driver.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert driver._state_machine.current_state[0] == State.PRIMARY_STATE_INACTIVE
    with harness.lock:
        harness.paths.clear()
    frames_before = len(policy.frames)
    for _ in range(5):
        harness.publish_inputs()
        time.sleep(0.05)
    time.sleep(0.3)
    assert not harness.paths and len(policy.frames) == frames_before  # inactive: nothing processed or published
    assert driver.diagnostic_status().message == "inactive (lifecycle)"

    assert driver.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert wait_for(lambda: harness.paths, 8.0, step=harness.publish_inputs, period_s=0.1)

    # cleanup releases the model and the interfaces; configure + activate bring it all back.
    assert driver.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert driver.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert driver._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
    assert driver.policy is None
    assert wait_for(lambda: harness.node.count_subscribers(f"/{graph.prefix}/camera") == 0, 3.0)
    assert driver.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert driver.trigger_activate() == TransitionCallbackReturn.SUCCESS
    with harness.lock:
        harness.paths.clear()
    harness.publish_route()  # the new subscription gets the latched route again
    assert wait_for(lambda: harness.paths, 8.0, step=harness.publish_inputs, period_s=0.1)


def test_inference_runs_off_the_executor_on_the_latest_frame_and_counts_drops(graph):
    policy = ThreadRecordingPolicy(delay_s=0.3)
    driver, _ = graph.driver(policy=policy)
    harness = graph.harness
    harness.publish_route()
    # Camera at ~20 Hz while each inference takes 0.3 s: frames are replaced while the worker is busy.
    assert wait_for(
        lambda: driver.frames_dropped >= 5 and len(harness.paths) >= 2, 10.0, step=harness.publish_inputs, period_s=0.05
    )
    assert policy.threads == {"min2real-inference"}  # never the executor threads serving callbacks and /clock
    received = driver.rates["camera"].count
    assert len(policy.frames) < received / 2  # latest only: no queue of old frames is worked through
    status = driver.diagnostic_status()
    values = {kv.key: kv.value for kv in status.values}
    assert int(values["frames_dropped"]) == driver.frames_dropped >= 5


def test_route_latched_before_the_driver_started_is_received(graph):
    harness = graph.harness
    harness.publish_route()  # transient local, published before the driver exists
    time.sleep(0.2)
    driver, _ = graph.driver()
    assert wait_for(lambda: driver.route_planner.has_route, 5.0)
    assert wait_for(lambda: harness.paths, 8.0, step=harness.publish_inputs, period_s=0.1)


def test_volatile_route_publisher_is_reported_and_route_durability_volatile_receives_it(graph):
    from nav_msgs.msg import Path
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    harness = graph.harness
    volatile = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
    route_pub = harness.node.create_publisher(Path, f"/{graph.prefix}/waypoints", volatile)
    driver, _ = graph.driver()  # transient-local route subscription: cannot match a volatile publisher

    def publish():
        route_pub.publish(harness.path_msg(left_turn_route_map(), "map", harness.now_msg()))
        harness.publish_inputs()

    assert wait_for(lambda: driver.qos_incompatible, 5.0, step=publish, period_s=0.1)
    assert not driver.route_planner.has_route and not harness.paths
    text = driver.qos_incompatible[f"/{graph.prefix}/waypoints"]
    assert "durability" in text and "route_durability" in text
    status = driver.diagnostic_status()
    assert "route_durability" in status.message  # no prediction + the reason the route never arrived

    graph.executor.remove_node(driver)
    driver.destroy_node()
    graph.nodes.remove(driver)
    driver, _ = graph.driver(route_durability="volatile")
    assert wait_for(lambda: harness.paths, 8.0, step=publish, period_s=0.1)
    assert not driver.qos_incompatible

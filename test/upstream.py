"""The upstream tools that scripts/setup_upstream.sh installs from ../shared/third_party (ros2 launch,
ros2cli, the bridge's message packages and converters, leaderboard, NAVSIM), for the tests that
run min2real against them.

`require(...)` skips a test with the reason where they are absent (a user's machine without the
sources), and FAILS it under MIN2REAL_CI=1 (.ci/run sets it): CI has the sources, so a missing
one there is a broken set-up, never a skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
IN_CI = os.environ.get("MIN2REAL_CI") == "1"


def require(*modules: str, executables: tuple[str, ...] = ()) -> None:
    """Skip (fail in CI) unless every Python module and executable is installed."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    missing += [
        name for name in executables if shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}") is None
    ]
    if not missing:
        return
    reason = (
        f"upstream {', '.join(missing)} not installed: scripts/setup_upstream.sh installs them from "
        "../shared/third_party (or MIN2REAL_THIRD_PARTY)"
    )
    if IN_CI:
        pytest.fail(f"{reason}; CI runs against the real upstream code and must not skip")
    pytest.skip(reason)


def ament_env(*prefixes: Path, **extra: str) -> dict[str, str]:
    """This environment with the venv's ament prefix (where the upstream packages are installed)
    behind `prefixes`, the venv's bin first on PATH."""
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([*(str(p) for p in prefixes), sys.prefix])
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("ROS_VERSION", "2")  # as a sourced ROS 2 sets them (the bridge's ros_compatibility reads it)
    env.setdefault("ROS_DISTRO", "jazzy")
    env.update(extra)
    return env


def stop_group(process: subprocess.Popen, timeout_s: float = 20.0) -> int:
    """SIGINT a process started with start_new_session=True (as Ctrl-C does to `ros2 launch`),
    wait for it, and return its exit code; anything of its session still alive afterwards fails."""
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f"{process.args} did not stop within {timeout_s} s of SIGINT") from None
    left = session_processes(process.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind by {process.args}: {left}"
    return code


def session_processes(session_id: int) -> list[int]:
    """Live processes of session `session_id` (a start_new_session=True child's pid)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            pids.append(int(entry.name))
    return pids


def colcon_build(workspace: Path) -> Path:
    """`colcon build --symlink-install` of this checkout in `workspace` (src/min2real links to it),
    with the venv's colcon (so the executables get the venv's Python); returns workspace/install."""
    require("colcon_core", "ros2cli", executables=("colcon",))
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "min2real").symlink_to(ROOT, target_is_directory=True)
    result = subprocess.run(
        [
            str(VENV_BIN / "colcon"),
            "build",
            "--symlink-install",
            "--base-paths",
            "src",
            "--packages-select",
            "min2real",
        ],
        cwd=workspace,
        env=ament_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return workspace / "install"


def sourced(install: Path, command: str) -> list[str]:
    """bash running `command` after sourcing the workspace's setup (as a user does)."""
    return ["bash", "-c", f"source {install}/setup.bash && exec {command}"]


class Probe:
    """A node of this process: asks the driver's lifecycle state, feeds it, records its Paths."""

    def __init__(self, context, name: str, driver: str = "min2real_driver") -> None:
        from lifecycle_msgs.srv import GetState
        from nav_msgs.msg import Path as PathMsg
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.node = Node(name, context=context)
        self.get_state = self.node.create_client(GetState, f"/{driver}/get_state")
        self.paths: list = []
        self.node.create_subscription(PathMsg, f"/{driver}/output/waypoints", self.paths.append, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            self.executor.spin_once(timeout_sec=0.05)

    def now(self, offset_s: float = 0.0):
        from rclpy.time import Time

        return Time(nanoseconds=self.node.get_clock().now().nanoseconds + int(offset_s * 1e9)).to_msg()

    def lifecycle_state(self, timeout_s: float, process: subprocess.Popen | None = None) -> str:
        """The driver's state over its lifecycle service, once it reports `active` (or the last seen)."""
        from lifecycle_msgs.srv import GetState

        deadline, label = time.monotonic() + timeout_s, "no answer"
        while time.monotonic() < deadline and (process is None or process.poll() is None):
            if self.get_state.wait_for_service(timeout_sec=0.2):
                future = self.get_state.call_async(GetState.Request())
                end = time.monotonic() + 2.0
                while not future.done() and time.monotonic() < end:
                    time.sleep(0.02)
                if future.done():
                    label = future.result().current_state.label
                    if label == "active":
                        return label
            time.sleep(0.2)
        return label

    def feed_until_path(self, publish_tick, timeout_s: float) -> tuple[list, list]:
        """Call publish_tick(stamp) at 10 Hz until a Path stamped with one of the sent stamps arrives."""
        sent, deadline = [], time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stamp = self.now()
            publish_tick(stamp)
            sent.append((stamp.sec, stamp.nanosec))
            time.sleep(0.1)
            if any((p.header.stamp.sec, p.header.stamp.nanosec) in sent for p in list(self.paths)):
                break
        return sent, list(self.paths)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()


def camera_image(stamp, frame_id: str):
    from sensor_msgs.msg import Image

    from min2real_ros.conversions import rgb_to_image_fields, ros_uint8_array

    fields = rgb_to_image_fields(np.random.default_rng(0).integers(0, 256, (256, 1024, 3), dtype=np.uint8), "bgra8")
    msg = Image()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width, msg.encoding = fields.height, fields.width, fields.encoding
    msg.is_bigendian, msg.step, msg.data = fields.is_bigendian, fields.step, ros_uint8_array(fields.data)
    return msg


def lidar_cloud(stamp, frame_id: str):
    from sensor_msgs.msg import PointCloud2, PointField

    from min2real_ros.conversions import ros_uint8_array, xyz_to_pointcloud2_fields

    points = np.random.default_rng(1).uniform([-10, -10, -2.4], [10, 10, 0.0], (500, 3)).astype(np.float32)
    fields = xyz_to_pointcloud2_fields(points)
    msg = PointCloud2()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width, msg.is_bigendian = fields.height, fields.width, fields.is_bigendian
    msg.fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in fields.fields]
    msg.point_step, msg.row_step, msg.is_dense = fields.point_step, fields.row_step, fields.is_dense
    msg.data = ros_uint8_array(fields.data)
    return msg

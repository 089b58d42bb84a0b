"""The vehicle path never needs torch: build-engine, the ONNX Runtime and TensorRT backends, the
nodes and the agents run in processes where torch, torchvision and timm cannot be imported.

Each check starts a fresh interpreter whose `sitecustomize` blocks those packages (an import
raises ImportError naming the rule), then runs the real entry points: the `min2real` command,
the runtime's policy, the `driver_node` / `controller_node` console scripts and the agents' logic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from min2real.paths import data_file

pytestmark = pytest.mark.ros

BLOCKER = """
import sys

class _NoTorch:
    BLOCKED = ("torch", "torchvision", "timm")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"{name} is blocked: the vehicle path must not need torch")
        return None

sys.meta_path.insert(0, _NoTorch())
"""


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("no_torch_site")
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture(scope="module")
def bundled_model() -> Path:
    return data_file("models", "bundled/min2real_tiny_sim.onnx")


def _python(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_blocker_really_blocks_torch(no_torch_env):
    result = _python("import torch", no_torch_env)
    assert result.returncode != 0 and "the vehicle path must not need torch" in result.stderr


def test_onnxruntime_policy_predicts_without_torch(no_torch_env, bundled_model):
    result = _python(
        f"""
        import sys
        import numpy as np
        from min2real.runtime.policy import load_policy
        from min2real.runtime.types import FrameInputs

        policy = load_policy({str(bundled_model)!r}, domain="sim", backend="onnxruntime-cpu")
        rng = np.random.default_rng(0)
        frame = FrameInputs(
            image_rgb=rng.integers(0, 255, (192, 512, 3), dtype=np.uint8),
            lidar_points_ego=rng.uniform(-20, 20, (2000, 3)).astype(np.float32),
            target_point_ego=np.array([10.0, 0.0], np.float32),
            speed_mps=4.0,
            command=None,
        )
        prediction = policy.predict(frame)
        assert np.isfinite(prediction.waypoints_ego).all(), prediction
        assert "torch" not in sys.modules
        print("waypoints", prediction.waypoints_ego.shape)
        """,
        no_torch_env,
    )
    assert result.returncode == 0, result.stderr
    assert "waypoints" in result.stdout


def test_build_engine_needs_tensorrt_not_torch(no_torch_env, bundled_model, tmp_path):
    """Without TensorRT the build fails with TensorRT's message; torch never comes up."""
    result = _python(
        f"""
        import sys
        from min2real.cli import main
        code = main(["build-engine", {str(bundled_model)!r}, "--cache-dir", {str(tmp_path)!r}])
        assert "torch" not in sys.modules
        sys.exit(code)
        """,
        no_torch_env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "TensorRT" in output and "vehicle path must not need torch" not in output, output
    show = _python(
        f"""
        import sys
        from min2real.cli import main
        sys.exit(main(["build-engine", {str(bundled_model)!r}, "--cache-dir", {str(tmp_path)!r}, "--show"]))
        """,
        no_torch_env,
    )
    assert show.returncode == 1 and "no cached fp16 engine" in show.stdout, show.stdout + show.stderr


def test_agents_run_without_torch(no_torch_env, bundled_model):
    result = _python(
        f"""
        import sys
        import numpy as np
        from min2real.agents import carla_leaderboard_agent as carla_agent
        from min2real.agents import navsim_agent
        from min2real.runtime.policy import load_policy

        config = carla_agent.CarlaAgentConfig(model_path={str(bundled_model)!r})
        policy = load_policy(config.model_path, domain=config.domain, backend="onnxruntime-cpu")
        camera = carla_agent.agent_camera(config, policy.metadata.source_camera)
        sensors = {{sensor["id"]: sensor for sensor in carla_agent.sensor_suite(config, camera)}}
        assert sensors, "no sensors"
        image = np.zeros((1080, 1920, 3), np.uint8)
        panorama = navsim_agent.stitch_front_cameras(image, image, image)
        assert panorama.ndim == 3
        assert "torch" not in sys.modules
        print("agents ok", sorted(sensors))
        """,
        no_torch_env,
    )
    assert result.returncode == 0, result.stderr
    assert "agents ok" in result.stdout


def _bin(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    assert path.is_file(), f"console script {name} is not installed next to {sys.executable}"
    return str(path)


@pytest.mark.parametrize("executable", ["driver_node", "controller_node"])
def test_nodes_start_and_stop_without_torch(no_torch_env, bundled_model, executable):
    """The console script runs (the driver configures and activates with the ONNX model) and
    stops cleanly on SIGINT; a node that needed torch would exit at import or at configure."""
    arguments = [_bin(executable), "--ros-args", "-p", "use_sim_time:=false"]
    if executable == "driver_node":
        arguments += ["-p", f"model_path:={bundled_model}", "-p", "backend:=onnxruntime-cpu"]
    else:  # the default output_type carla needs carla_msgs, which this environment does not have
        arguments += ["-p", "output_type:=twist"]
    process = subprocess.Popen(arguments, env=no_torch_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(12):  # up for 6 s: it loaded (the driver: configured + activated) and spins
            time.sleep(0.5)
            if process.poll() is not None:
                break
        assert process.poll() is None, f"{executable} exited early:\n{process.communicate()[0]}"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "vehicle path must not need torch" not in output and "Traceback" not in output, output

"""Shared pytest setup.

ROS 2 discovery stays on loopback for every test (set before anything imports rclpy), with a
per-run domain id and a log directory. rclpy and the message packages are required: the
`ros_context` fixture fails (never skips) when they are missing, because scripts/setup_env.sh
always installs them.
"""

from __future__ import annotations

import os
import tempfile

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="min2real-ros-logs-"))
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
# The shipped Fast DDS profile (large shared-memory segment), as scripts/ros_env.sh sets it.
_DDS_PROFILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config", "fastdds_large_data.xml"
)
os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", _DDS_PROFILE)
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", _DDS_PROFILE)
os.environ.setdefault("TIMM_FUSED_ATTN", "0")

import pytest  # noqa: E402


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return _cuda_available()


def pytest_collection_modifyitems(config, items):
    del config
    needs_gpu = [item for item in items if "gpu" in item.keywords or "tensorrt" in item.keywords]
    if not needs_gpu:
        return
    cuda, trt = _cuda_available(), _tensorrt_available()
    for item in needs_gpu:
        if "tensorrt" in item.keywords and not trt:
            item.add_marker(pytest.mark.skip(reason="TensorRT and a CUDA GPU are not available on this machine"))
        elif "gpu" in item.keywords and not cuda:
            item.add_marker(pytest.mark.skip(reason="no CUDA GPU on this machine"))


@pytest.fixture(scope="module")
def ros_context():
    """An initialised rclpy context for one test module (loopback discovery, per-run domain)."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


@pytest.fixture
def tiny_contract():
    from min2real.contract import TINY_CONTRACT

    return TINY_CONTRACT


@pytest.fixture(scope="session")
def min2real_install(tmp_path_factory):
    """min2real built with `colcon build --symlink-install` in a temporary workspace (its install/),
    once per run; skipped (failed in CI) where colcon and the upstream tools are not installed."""
    from upstream import colcon_build

    return colcon_build(tmp_path_factory.mktemp("colcon_ws"))

"""`min2real env`: what this installation can do (backends, ROS 2, GPU), for bug reports."""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform

HELP = "print the installed backends, ROS 2 packages and accelerators as JSON"

_PROBED = (
    "numpy",
    "cv2",
    "torch",
    "timm",
    "onnx",
    "onnxruntime",
    "tensorrt",
    "rclpy",
    "sensor_msgs",
    "nav_msgs",
    "rosbags",
    "launch_ros",
    "carla_msgs",
    "ackermann_msgs",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    del args
    report: dict[str, object] = {"python": platform.python_version()}
    for name in _PROBED:
        report[name] = importlib.util.find_spec(name) is not None
    if report["torch"]:
        import torch

        report["torch_version"] = torch.__version__
        report["cuda_available"] = torch.cuda.is_available()
    if report["onnxruntime"]:
        import onnxruntime

        report["onnxruntime_providers"] = onnxruntime.get_available_providers()
    print(json.dumps(report, indent=2))
    return 0

"""min2real: ament_python package that also installs with pip into a plain virtual environment.

`models/` and `training/` install as `min2real.models` and `min2real.training` (never as
top-level `models`/`training`); the ROS side is `min2real_ros`.
"""

from glob import glob

from setuptools import setup

PACKAGE = "min2real"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Min2Real sim-to-real end-to-end driving: training, export and ROS 2 runtime",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=[
        "min2real",
        "min2real.commands",
        "min2real.models",
        "min2real.training",
        "min2real.training.data",
        "min2real_ros",
        "min2real_ros.runtime",
        "min2real_ros.nodes",
        "min2real_ros.agents",
        "min2real_ros.replay",
    ],
    package_dir={
        "min2real": "min2real",
        "min2real.commands": "min2real/commands",
        "min2real.models": "models",
        "min2real.training": "training",
        "min2real.training.data": "training/data",
        "min2real_ros": "min2real_ros",
        "min2real_ros.runtime": "min2real_ros/runtime",
        "min2real_ros.nodes": "min2real_ros/nodes",
        "min2real_ros.agents": "min2real_ros/agents",
        "min2real_ros.replay": "min2real_ros/replay",
    },
    package_data={"min2real.models": ["bundled/*.onnx", "bundled/*.json", "bundled/*.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", [f for f in glob("config/*") if not f.endswith("/train")]),
        ("share/" + PACKAGE + "/config/train", glob("config/train/*.yaml")),
    ],
    # Heavy dependencies (torch, timm, onnxruntime, rclpy) are pinned in requirements/lock.txt;
    # the vehicle path needs only numpy + opencv + yaml + an inference backend.
    install_requires=["numpy", "pyyaml"],
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "min2real = min2real.cli:main",
            "driver_node = min2real_ros.nodes.driver_node:main",
            "controller_node = min2real_ros.nodes.controller_node:main",
        ],
    },
)

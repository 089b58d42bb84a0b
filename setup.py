"""min2real: ament_python package that also installs with pip into a plain virtual environment.

Every package's folder is its import name (no package_dir remapping), so `colcon build
--symlink-install`, grep and IDEs see the import tree as it is: `min2real/` is the ROS-free core,
`min2real_ros/` the rclpy side. The top-level `models/` (model artifacts and cards) and
`training/` (recipes) folders are data, installed under share/min2real.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "min2real"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Min2Real sim-to-real end-to-end driving: training, export and ROS 2 runtime",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["min2real", "min2real.*", "min2real_ros", "min2real_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml") + glob("config/*.json") + glob("config/*.xml")),
        ("share/" + PACKAGE + "/models/bundled", glob("models/bundled/*")),
        ("share/" + PACKAGE + "/models/extractor", glob("models/extractor/*")),
        ("share/" + PACKAGE + "/models", glob("models/*.md")),
        ("share/" + PACKAGE + "/training", glob("training/*.yaml") + glob("training/*.md")),
    ],
    # Pinned versions of everything live in requirements/lock.txt; the vehicle path needs only
    # numpy + opencv + yaml + an inference backend (the [runtime] extra), never torch.
    install_requires=["numpy", "pyyaml"],
    extras_require={
        "runtime": ["opencv-python-headless", "onnxruntime", "onnx"],
        # TensorRT 10.x (JetPack on Jetson) or 11.x (x86 with current CUDA): docs/deployment.md.
        "tensorrt": ["tensorrt>=10,<12", "cuda-python"],
        "train": [
            "torch",
            "torchvision",
            "timm",
            "onnx",
            "onnxscript",
            "onnxruntime",
            "opencv-python-headless",
            "laspy",
            "lazrs",
            "safetensors",
            "tqdm",
            "tensorboard",
            "matplotlib",
        ],
        "replay": ["rosbags", "matplotlib", "opencv-python-headless"],
    },
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "min2real = min2real.cli:main",
            "driver_node = min2real_ros.nodes.driver_node:main",
            "controller_node = min2real_ros.nodes.controller_node:main",
        ],
        # `min2real` subcommands that need ROS 2, discovered by min2real.cli (see its docstring).
        "min2real.commands": [
            "replay = min2real_ros.cli.replay",
            "demo = min2real_ros.cli.demo",
            "synth-bag = min2real_ros.cli.synth_bag",
            "closed-loop = min2real_ros.cli.closed_loop",
        ],
    },
)

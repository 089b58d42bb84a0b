"""Foundation: the ament_python package installs the way colcon and pip install it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _colcon_style_install(prefix: Path, build: Path) -> None:
    # The command colcon's ament_python build runs (colcon-ros, --merge-install off).
    subprocess.run(
        [
            sys.executable,
            "setup.py",
            "--quiet",
            "egg_info",
            "--egg-base",
            str(build),
            "build",
            "--build-base",
            str(build / "build"),
            "install",
            "--prefix",
            str(prefix),
            "--record",
            str(build / "install.log"),
            "--single-version-externally-managed",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )


def test_colcon_style_install_layout(tmp_path):
    prefix, build = tmp_path / "install", tmp_path / "build"
    build.mkdir()
    _colcon_style_install(prefix, build)
    share = prefix / "share" / "min2real"
    assert (prefix / "share/ament_index/resource_index/packages/min2real").is_file()
    assert (share / "package.xml").is_file()
    launch_files = sorted(p.name for p in (share / "launch").glob("*.launch.py"))
    assert launch_files == sorted(p.name for p in (REPO / "launch").glob("*.launch.py"))
    assert launch_files, "no launch files were installed"
    assert (share / "config" / "driver_node.param.yaml").is_file()
    assert (share / "config" / "controller_node.param.yaml").is_file()
    for executable in ("driver_node", "controller_node", "min2real"):
        path = prefix / "lib" / "min2real" / executable
        assert path.is_file() and os.access(path, os.X_OK), f"lib/min2real/{executable} missing"
    site = next(prefix.glob("lib/python3*/site-packages"))
    assert (site / "min2real" / "contract.py").is_file()
    assert (site / "min2real" / "runtime" / "types.py").is_file()
    assert (site / "min2real_ros" / "nodes" / "driver_node.py").is_file()
    assert (share / "models" / "bundled" / "min2real_tiny_sim.onnx").is_file()
    assert (share / "training" / "tiny.yaml").is_file()
    assert not (site / "models").exists() and not (site / "training").exists(), "top-level models/training installed"


def test_pip_wheel_installs_namespaced_modules(tmp_path):
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheel_dir),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next(wheel_dir.glob("min2real-*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (target / "min2real" / "contract.py").is_file()
    assert (target / "min2real" / "training" / "checkpoint.py").is_file()
    assert not (target / "models").exists() and not (target / "training").exists()
    probe = subprocess.run(
        [sys.executable, "-c", "import min2real.contract as c; print(c.__file__)"],
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip().startswith(str(target))


def test_cli_lists_only_registered_subcommands():
    from min2real import cli

    result = subprocess.run(
        [sys.executable, "-m", "min2real.cli", "--help"], capture_output=True, text=True, check=True
    )
    for name in cli.COMMANDS:
        assert name in result.stdout
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["no-such-command"])


def test_contract_module_does_not_import_torch():
    code = "import sys, min2real.contract; assert 'torch' not in sys.modules, 'contract imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)

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
    metadata = next(target.glob("min2real-*.dist-info")).joinpath("METADATA").read_text()
    extras = {line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Provides-Extra:")}
    assert {"train", "runtime", "tensorrt"} <= extras, extras
    runtime_requirements = [line for line in metadata.splitlines() if 'extra == "runtime"' in line]
    assert runtime_requirements and not any("torch" in line for line in runtime_requirements), runtime_requirements
    from packaging.requirements import Requirement

    tensorrt = [
        Requirement(line.split(":", 1)[1])
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: tensorrt") and 'extra == "tensorrt"' in line
    ]
    # TensorRT 10 (JetPack) and 11 (x86, current CUDA) both resolve; older ones lack the named-tensor API.
    assert len(tensorrt) == 1 and [tensorrt[0].specifier.contains(v) for v in ("10.3.0", "11.4.0.106", "8.6.1")] == [
        True,
        True,
        False,
    ]
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


def _all_modules(root: Path) -> list[str]:
    modules = []
    for package in ("min2real", "min2real_ros"):
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__main__":
                continue
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_editable_install_imports_every_module_from_outside_the_checkout(tmp_path):
    """`colcon build --symlink-install` installs in develop/editable mode: a prefix whose site
    directory points back at the sources. Every module of both packages must import from there,
    from another working directory, without the checkout on sys.path."""
    import site
    import sysconfig

    prefix = tmp_path / "prefix"
    # A bare environment whose only min2real comes from the editable install under test; the
    # third-party packages come from this venv through a plain path entry (its own .pth files,
    # including this checkout's editable install, are not processed from there).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site_dir = Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))
    site_dir.mkdir(parents=True, exist_ok=True)
    (site_dir / "third_party.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--ignore-installed",
            "--prefix",
            str(prefix),
            "--config-settings",
            "editable_mode=compat",
            "-e",
            str(REPO),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    modules = _all_modules(REPO)
    probe = (
        "import importlib, sys\n"
        f"modules = {modules!r}\n"
        "for name in modules:\n"
        "    importlib.import_module(name)\n"
        "import min2real, min2real_ros\n"
        "print(min2real.__file__)\n"
        "print(min2real_ros.__file__)\n"
        "print(len(modules))\n"
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", probe], cwd=outside, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    core_file, ros_file, count = result.stdout.split()
    assert Path(core_file) == REPO / "min2real" / "__init__.py"
    assert Path(ros_file) == REPO / "min2real_ros" / "__init__.py"
    assert int(count) == len(modules) > 50
    assert (prefix / "bin" / "min2real").is_file(), "console scripts not installed into the prefix"

"""colcon for real: the package built with `colcon build --symlink-install` in a temporary workspace
(colcon-common-extensions in the venv, the README's workspace recipe), its setup sourced, and
`ros2 run min2real driver_node` brought to `active` from the installed files: the parameter file
and the bundled model through the package's share directory, the executable with the venv's Python."""

from __future__ import annotations

import subprocess

import pytest
from upstream import ROOT, VENV_BIN, Probe, ament_env, sourced, stop_group

pytestmark = pytest.mark.ros


def test_colcon_symlink_install_runs_the_driver_from_the_installed_files(min2real_install, ros_context, tmp_path):
    package = min2real_install / "min2real"
    share = package / "share" / "min2real"
    executable = package / "lib" / "min2real" / "driver_node"
    assert executable.is_file()
    # colcon writes the shebang of the Python that ran it: the venv's, where rclpy and numpy are.
    shebang = executable.read_text().splitlines()[0]
    assert shebang.startswith(f"#!{VENV_BIN}/python"), shebang
    for installed in (
        "launch/vehicle.launch.py",
        "config/driver_node.param.yaml",
        "models/bundled/min2real_tiny_sim.onnx",
    ):
        assert (share / installed).is_symlink(), installed  # --symlink-install: edits need no rebuild
    log = tmp_path / "driver.log"
    command = (
        "ros2 run min2real driver_node --ros-args -r __node:=colcon21_driver"
        " --params-file $(ros2 pkg prefix --share min2real)/config/driver_node.param.yaml"
        " -p model_path:=$(ros2 pkg prefix --share min2real)/models/bundled/min2real_tiny_sim.onnx"
        " -p backend:=onnxruntime-cpu -p mount_source:=parameters"
    )
    process = subprocess.Popen(
        ["bash", "-c", sourced(min2real_install, "true")[2].replace("exec true", command)],
        env=ament_env(),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    probe = Probe(ros_context, "colcon_probe", driver="colcon21_driver")
    try:
        assert probe.lifecycle_state(30.0, process) == "active", log.read_text()[-3000:]
    finally:
        probe.close()
        stop_group(process)
    assert f"loaded {share}/models/bundled/min2real_tiny_sim.onnx" in log.read_text()


def test_missing_upstream_tools_skip_with_the_reason_and_fail_in_ci(monkeypatch):
    import upstream

    monkeypatch.setattr(upstream, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="no_such_upstream_module not installed.*setup_upstream.sh"):
        upstream.require("no_such_upstream_module")
    monkeypatch.setattr(upstream, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI runs against the real upstream code and must not skip"):
        upstream.require("no_such_upstream_module")


def test_setup_upstream_without_the_sources_says_so_and_fails_only_in_ci(tmp_path):
    script = ["bash", str(ROOT / "scripts" / "setup_upstream.sh")]
    env = ament_env(MIN2REAL_THIRD_PARTY=str(tmp_path / "absent"), MIN2REAL_CI="0")
    result = subprocess.run(script, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "SHA256SUMS not found" in result.stdout
    result = subprocess.run(script, env={**env, "MIN2REAL_CI": "1"}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "CI must run against the upstream sources" in result.stderr

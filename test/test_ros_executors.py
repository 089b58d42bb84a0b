"""No MultiThreadedExecutor anywhere: rclpy 7.1's re-submits tasks its pool has not started in a
loop that holds the GIL (ros2/rclpy#1452), starving every other thread (facts.md section 7). The
nodes, the replay, the demo, the tests and the benchmarks spin SingleThreadedExecutors; the
driver's inference has its own thread."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_multithreaded_executor_is_constructed():
    offenders = []
    for folder in ("min2real", "min2real_ros", "test", "benchmarks", "launch", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == (
                    "MultiThreadedExecutor"
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_nodes_spin_a_single_threaded_executor():
    for module in ("driver_node", "controller_node"):
        source = (ROOT / "min2real_ros" / "nodes" / f"{module}.py").read_text(encoding="utf-8")
        assert "SingleThreadedExecutor()" in source, module

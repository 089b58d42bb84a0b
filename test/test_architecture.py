"""The layout's import rules (design.md "Dependency direction"), read from the source with `ast`.

Every import statement of every module is checked, those inside functions (lazy imports) too:
a lazy import is still a dependency. The few allowed lazy exceptions are listed by module.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROS_PACKAGES = (
    "rclpy",
    "rosbags",
    "rosgraph_msgs",
    "std_msgs",
    "sensor_msgs",
    "nav_msgs",
    "geometry_msgs",
    "diagnostic_msgs",
    "visualization_msgs",
    "lifecycle_msgs",
    "rcl_interfaces",
    "tf2_ros",
    "carla_msgs",
    "ackermann_msgs",
    "launch",
    "launch_ros",
)
TORCH = ("torch", "torchvision", "timm")


@dataclass(frozen=True)
class Import:
    module: str  # importing module, e.g. "min2real.runtime.policy"
    target: str  # imported module, e.g. "numpy"
    line: int
    top_level: bool  # executed at import time (not inside a function)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[Import]:
    return _imports_of(path.read_text(), _module_name(path), is_package=path.name == "__init__.py")


def _imports_of(source: str, module: str, is_package: bool = False) -> list[Import]:
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = top_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(module, alias.name, child.lineno, top_level) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative import: resolve against the package
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    origin = ".".join(base + ([child.module] if child.module else []))
                else:
                    origin = child.module or ""
                # `from min2real import training` depends on min2real.training: record origin.name
                found.extend(Import(module, f"{origin}.{alias.name}", child.lineno, top_level) for alias in child.names)
            visit(child, inside)

    visit(tree, True)
    return found


def _all_imports(package: str) -> list[Import]:
    return [item for path in sorted((REPO / package).rglob("*.py")) for item in _imports(path)]


def _is(target: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(target == prefix or target.startswith(prefix + ".") for prefix in prefixes)


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


CORE = _all_imports("min2real")
ROS_SIDE = _all_imports("min2real_ros")


def _violations(
    imports: list[Import],
    source: str,
    forbidden: tuple[str, ...],
    *,
    top_level_only: bool = False,
    allowed_modules: tuple[str, ...] = (),
) -> list[str]:
    return [
        f"{item.module}:{item.line} imports {item.target}"
        for item in imports
        if _in(item.module, source)
        and item.module not in allowed_modules
        and _is(item.target, forbidden)
        and (item.top_level or not top_level_only)
    ]


def test_the_core_never_imports_the_ros_side():
    assert not _violations(CORE, "min2real", ("min2real_ros", *ROS_PACKAGES))


def test_the_contract_depends_on_numpy_only():
    allowed_third_party = ("numpy", "cv2")  # cv2 lazily, inside prepare_camera_rgb
    bad = [
        f"{item.module}:{item.line} imports {item.target}"
        for item in CORE
        if item.module in ("min2real.contract", "min2real.files", "min2real.paths")
        and (
            _is(item.target, ("min2real", *TORCH))
            or (not _is(item.target, allowed_third_party) and item.target.split(".")[0] not in _STDLIB)
        )
    ]
    assert not bad


# Python's standard library modules the contract / files / paths use (a closed list keeps the rule honest).
_STDLIB = {
    "__future__",
    "dataclasses",
    "hashlib",
    "json",
    "math",
    "os",
    "tempfile",
    "collections",
    "pathlib",
    "sys",
    "typing",
    "ament_index_python",  # paths.py asks ament_index (optional) where the package is installed
}


def test_runtime_never_imports_torch_or_training():
    forbidden = (
        *TORCH,
        "min2real.training",
        "min2real.models",
        "min2real.export",
        "min2real.precision",  # quantization is the export side's (min2real quantize)
        "min2real.evaluation",
        "min2real.agents",
        "min2real.cli",
    )
    # The torch backend is the one runtime module that runs a checkpoint in torch (lazily, on request).
    assert not _violations(
        CORE, "min2real.runtime", forbidden, allowed_modules=("min2real.runtime.backends.torch_backend",)
    )


def test_monitor_needs_torch_only_to_read_a_checkpoint():
    # The monitor's graph surgery, statistics and calibration run on an exported graph without torch;
    # from_model (the export hook) reads the checkpoint's discriminator, importing torch lazily.
    assert not _violations(CORE, "min2real.monitor", TORCH, allowed_modules=("min2real.monitor.from_model",))
    assert not _violations(CORE, "min2real.monitor.from_model", TORCH, top_level_only=True)
    assert not _violations(CORE, "min2real.monitor", ("min2real.training", "min2real.export", "min2real.evaluation"))


def test_torch_backend_imports_torch_only_lazily():
    assert not _violations(
        CORE, "min2real.runtime.backends.torch_backend", TORCH + ("min2real.models",), top_level_only=True
    )


def test_agents_need_neither_torch_nor_training():
    # NAVSIM's AbstractAgent is a torch.nn.Module: the NAVSIM agent class is built lazily, on first use.
    assert not _violations(CORE, "min2real.agents", TORCH, top_level_only=True)
    assert not _violations(
        CORE, "min2real.agents", ("min2real.training", "min2real.models", "min2real.export", "min2real.data")
    )


def test_models_do_not_reach_up():
    assert not _violations(
        CORE,
        "min2real.models",
        (
            "min2real.training",
            "min2real.data",
            "min2real.runtime",
            "min2real.evaluation",
            "min2real.export",
            "min2real.agents",
            "min2real.cli",
        ),
    )


def test_data_does_not_reach_up_and_imports_torch_only_lazily():
    # The one exception: training labels take their target points and commands from the vehicle's own
    # route planner (runtime.route, numpy + contract only), so training and deployment cannot disagree.
    reaching_up = _violations(
        CORE,
        "min2real.data",
        (
            "min2real.models",
            "min2real.training",
            "min2real.runtime",
            "min2real.evaluation",
            "min2real.export",
            "min2real.agents",
            "min2real.cli",
        ),
    )
    assert not [line for line in reaching_up if not line.split(" imports ")[1].startswith("min2real.runtime.route.")]
    assert not _violations(CORE, "min2real.runtime.route", ("min2real.runtime", "min2real.data"), allowed_modules=())
    assert not _violations(CORE, "min2real.data", TORCH, top_level_only=True)


def test_training_and_evaluation_layers():
    assert not _violations(CORE, "min2real.training", ("min2real.runtime", "min2real.agents", "min2real.cli"))
    assert not _violations(CORE, "min2real.evaluation", ("min2real.training", "min2real.cli"))


def test_experiments_are_the_top_layer():
    """min2real.experiments trains, exports and drives: nothing below may depend on it."""
    users = [item for item in CORE + ROS_SIDE if _is(item.target, "min2real.experiments")]
    assert not [f"{item.module}:{item.line}" for item in users if not _in(item.module, "min2real.experiments")]


def test_ros_side_never_needs_torch_or_training():
    assert not _violations(ROS_SIDE, "min2real_ros", (*TORCH, "min2real.training"))
    assert not _violations(ROS_SIDE, "min2real_ros.nodes", ("min2real.models", "min2real.data", "min2real.export"))


def test_the_rules_see_imports_inside_functions_and_relative_imports():
    """A guard on the checker itself: lazy and relative imports of forbidden modules are reported."""
    source = "from . import policy\ndef f():\n    import torch\n    from ..training import trainer\n"
    imports = _imports_of(source, "min2real.runtime.probe")
    assert {(item.target, item.top_level) for item in imports} == {
        ("min2real.runtime.policy", True),
        ("torch", False),
        ("min2real.training.trainer", False),
    }
    assert len(_violations(imports, "min2real.runtime", (*TORCH, "min2real.training"))) == 2
    assert not _violations(imports, "min2real.runtime", TORCH, top_level_only=True)


@pytest.mark.parametrize("package", ["min2real", "min2real_ros"])
def test_every_folder_is_its_import_name(package):
    """No package_dir remapping: every folder with Python files under a package is a package."""
    for folder in [REPO / package, *(p for p in (REPO / package).rglob("*") if p.is_dir())]:
        if folder.name == "__pycache__" or not any(folder.glob("*.py")):
            continue
        assert (folder / "__init__.py").is_file(), f"{folder.relative_to(REPO)} has modules but no __init__.py"
    setup_calls = [node for node in ast.walk(ast.parse((REPO / "setup.py").read_text())) if isinstance(node, ast.Call)]
    assert not [kw for call in setup_calls for kw in call.keywords if kw.arg == "package_dir"], "package_dir remapping"

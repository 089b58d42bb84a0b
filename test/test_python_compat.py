"""Users run ROS 2 Humble (Python 3.10) and Jazzy (Python 3.12): every source file must compile on both."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("min2real", "models", "training", "min2real_ros", "launch", "benchmarks", "scripts", "test")


def _sources() -> list[Path]:
    files = [REPO / "setup.py"]
    for folder in SOURCE_DIRS:
        files.extend(sorted((REPO / folder).rglob("*.py")))
    return files


def test_grammar_is_python_3_10():
    for path in _sources():
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 10))


_COMPILE_ALL = "import sys\nfor p in sys.argv[1:]:\n    compile(open(p, encoding='utf-8').read(), p, 'exec')\nprint('ok', len(sys.argv) - 1)\n"


@pytest.mark.parametrize("interpreter", ["python3.10", "python3.12"])
def test_sources_compile_with(interpreter):
    version = interpreter.removeprefix("python")
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/{interpreter}"))
    executable = str(pyenv[-1]) if pyenv else shutil.which(interpreter)
    if executable is None:
        pytest.skip(f"{interpreter} is not installed on this machine")
    probe = subprocess.run([executable, "--version"], capture_output=True, text=True)
    if probe.returncode != 0:  # e.g. a pyenv shim without that version selected
        pytest.skip(f"{interpreter} is not runnable here: {probe.stderr.strip()[:200]}")
    sources = [str(path) for path in _sources()]
    result = subprocess.run([executable, "-c", _COMPILE_ALL, *sources], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")

"""The `min2real` command line: one entry point, one subcommand per job.

Each subcommand is a module with `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
Modules import only the standard library at import time; heavy dependencies (torch, timm,
onnxruntime, rclpy) are imported inside `run`, so `min2real --help` is instant and the vehicle
path never pays for what it does not use.

The core's subcommands are listed in COMMANDS; other installed packages add theirs through the
entry point group `min2real.commands` (min2real_ros: replay, demo, synth-bag, closed-loop), the
way ros2cli discovers its verbs, so this package never imports the ROS side.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from min2real import __version__

ENTRY_POINT_GROUP = "min2real.commands"
# name -> module under min2real.cli (one line per subcommand).
COMMANDS: dict[str, str] = {
    "env": "env",
    "data": "data",
    "dagger": "dagger",
    "eval": "eval",
    "build-engine": "build_engine",
    "export": "export",
    "model": "model",
    "monitor": "monitor",
    "pretrain": "pretrain",
    "quantize": "quantize",
    "train": "train",
}


def command_modules() -> dict[str, str]:
    """Subcommand name -> module path: the core's, then those other packages register."""
    from importlib.metadata import entry_points

    modules = {name: f"min2real.cli.{module}" for name, module in COMMANDS.items()}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        modules.setdefault(entry.name, entry.value)
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="min2real",
        description="Min2Real sim-to-real end-to-end driving: data, training, export, runtime.",
    )
    parser.add_argument("--version", action="version", version=f"min2real {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in command_modules().items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

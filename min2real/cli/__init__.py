"""The `min2real` command line: one entry point, one subcommand per job.

Only subcommands that work are registered here. Each maps to a module in `min2real.cli`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from min2real import __version__

# name -> module under min2real.cli (one line per subcommand).
COMMANDS: dict[str, str] = {
    "env": "env",
    "data": "data",
    "eval": "eval",
    "build-engine": "build_engine",
    "export": "export",
    "model": "model",
    "train": "train",
    "replay": "replay",
    "demo": "demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="min2real",
        description="Min2Real sim-to-real end-to-end driving: data, training, export, runtime.",
    )
    parser.add_argument("--version", action="version", version=f"min2real {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"min2real.cli.{module_name}")
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

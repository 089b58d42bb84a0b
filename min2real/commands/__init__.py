"""Subcommands of the `min2real` CLI.

Each module here defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
Modules import only the standard library at import time; heavy dependencies (torch, timm,
onnxruntime, rclpy) are imported inside `run`, so `min2real --help` is instant and the vehicle
path never pays for what it does not use.
"""

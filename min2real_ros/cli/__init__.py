"""The `min2real` subcommands that need ROS 2 (replay, demo, synth-bag, closed-loop through the nodes).

Registered in setup.py under the entry point group `min2real.commands`; `min2real.cli` lists them
next to its own without importing this package by name.
"""

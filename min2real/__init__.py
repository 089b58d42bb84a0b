"""min2real: Min2Real sim-to-real end-to-end driving.

Subpackages: `min2real.models` (contract + network), `min2real.training` (offline), and the
command-line entry point `min2real.cli`. The ROS 2 side is the separate package `min2real_ros`.
"""

__version__ = "0.1.0"

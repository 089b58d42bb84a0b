"""Benchmark agents over the ROS-free runtime: the CARLA leaderboard (Longest6) agent and the
NAVSIM agent (navhard_two_stage, EPDMS). Both use the same policy, controller and route planner
as the ROS nodes; `carla`, `leaderboard` and `navsim` are imported only when an agent class is
built, with a clear error where they are missing."""

"""Rosbag tools: the synthetic CARLA-bridge bag writer and the replay of a bag through the real nodes.

A tool on top of the runtime and the nodes (the runtime never imports it). `bag` is the only
place that opens rosbag2 files (via `rosbags`, sqlite3 and MCAP); `synth_bag` writes a drive from
the synthetic generator in the CARLA ROS bridge layout; `replay` runs a bag through the driver and
controller nodes in three parts: `session` (the rclpy side: nodes, player, recorder, executors),
`playback` (bag or fast timing) and `report` (the output bag's companions: overlay sheet, plots,
summary).
"""

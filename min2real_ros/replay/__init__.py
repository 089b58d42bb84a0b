"""Rosbag tools: the synthetic CARLA-bridge bag writer and the replay of a bag through the real nodes.

A tool on top of the runtime and the nodes (the runtime never imports it). `bag` is the only
place that opens rosbag2 files (via `rosbags`, sqlite3 and MCAP); `synth_bag` writes a drive from
the synthetic generator in the CARLA ROS bridge layout; `replay` feeds a bag's raw serialized
messages to the driver and controller nodes over ROS 2 and records what they publish; `report`
turns the recording into the output bag's companions (overlay sheet, plots, summary).
"""

"""min2real: Min2Real sim-to-real end-to-end driving, the ROS-free core.

Read it in the order the data flows (README "Reading order"):

    contract    numpy only: sizes, crop/resize, BEV, frames, steering rule, artifact metadata
    data        CARLA Garage and NAVSIM loaders, the synthetic two-domain world
    models      the network (V2R adapter, frozen DINOv2, heads, variants) - torch + timm
    training    augmentation, losses, trainer (DDP), checkpoints - torch
    export      checkpoint -> ONNX with the contract as metadata - torch
    runtime     backends (ONNX Runtime, TensorRT, torch), engine build, policy, controller - no torch
    agents      CARLA leaderboard and NAVSIM agents over the runtime
    evaluation  open loop and closed loop (the synthetic judge)
    cli         the `min2real` command

The ROS 2 side is the separate package `min2real_ros`, which imports this one (never the reverse).
"""

__version__ = "0.1.0"

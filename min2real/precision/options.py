"""What `min2real quantize` does, as constants (standard library only; see convert.py for why)."""

from __future__ import annotations

PRECISIONS = ("fp16", "int8")
FP32_OPS = (
    "LayerNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "BatchNormalization",
    "Softmax",
    "LogSoftmax",
    "ReduceMean",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceL2",
    "ReduceLogSumExp",
)
FP32_INPUTS = ("lidar_bev",)  # contract.INPUT_LIDAR_BEV: the BEV histogram
INT8_OPS = ("Conv", "MatMul", "Gemm")
# Weights (initializer name prefixes) whose layers stay FP32 in INT8 graphs: the V2R adapter
# reconstructs the image the frozen extractor sees, so its INT8 error runs through the whole ViT
# (bundled model, 283 synth-val frames: waypoints p99 0.082 m with the adapter in FP32, 0.156 m
# with it in INT8; no single adapter layer accounts for it). docs/performance.md
INT8_FP32_WEIGHTS = ("model.adapter.",)
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
DEFAULT_CALIBRATION_METHOD = "percentile"
DEFAULT_CALIB_SAMPLES = 128
# Max |error| allowed per output against the FP32 graph on the verification inputs (waypoints in
# metres, logits in logit units); above it `min2real quantize` fails. Measured on the bundled
# model, 64 synth-val frames (docs/performance.md): fp16 waypoints 0.017 m / logits 0.004,
# int8 0.40 m / 0.15.
DEFAULT_TOLERANCES = {
    "fp16": {"waypoints": 0.05, "steer_logits": 0.05},
    "int8": {"waypoints": 1.0, "steer_logits": 1.0},
}

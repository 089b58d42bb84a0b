"""The driving policy: one frame in the contract's frames -> waypoints and a steering class.

    FrameInputs --prepare_camera_rgb / lidar_bev_from_points / command_one_hot--> graph inputs
                --backend.infer--> graph outputs --decode_outputs--> Prediction

The contract comes from the model's own metadata, so pre-processing always matches the graph.
Input buffers are allocated once per policy and overwritten each frame.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from min2real.contract import (
    INPUT_COMMAND,
    INPUT_IMAGE,
    INPUT_LIDAR_BEV,
    INPUT_SPEED,
    INPUT_TARGET_POINT,
    OUTPUT_DOMAIN_LOGIT,
    OUTPUT_OOD_SCORE,
    ArtifactMetadata,
    Contract,
    ContractError,
    command_one_hot,
    concrete_shape,
    decode_outputs,
    decode_target_speed,
    lidar_bev_from_points,
    optional_output,
    prepare_camera_rgb,
)
from min2real.runtime.backends import load_backend
from min2real.runtime.backends.base import Backend
from min2real.runtime.types import FrameInputs, Prediction


class DrivingPolicy:
    """A loaded model plus the contract's pre- and post-processing (batch 1).

    contract / metadata: from the model artifact. backend_name: e.g. "onnxruntime-cpu",
    "onnxruntime-cuda", "tensorrt", "torch-cpu".
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.metadata: ArtifactMetadata = backend.metadata
        self.contract: Contract = backend.metadata.contract
        self.backend_name: str = backend.name
        # Only the inputs the graph has (an exported graph may lack e.g. the BEV input when the
        # variant does not use LiDAR); allocated once, overwritten per frame.
        self._inputs = {
            name: np.zeros(concrete_shape(shape, 1), dtype=np.float32) for name, shape in backend.input_shapes.items()
        }

    def predict(self, frame: FrameInputs) -> Prediction:
        """Run one frame. Raises ContractError on bad input or non-finite model output."""
        start = time.perf_counter()
        self._fill_inputs(frame)
        preprocessed = time.perf_counter()
        outputs = self.backend.infer(self._inputs)
        inferred = time.perf_counter()
        waypoints_ego, steer_class, steer_probs = decode_outputs(outputs, self.contract)
        ood_score, domain_logit = (optional_output(outputs, name) for name in (OUTPUT_OOD_SCORE, OUTPUT_DOMAIN_LOGIT))
        target_speed_probs = decode_target_speed(outputs)
        return Prediction(
            waypoints_ego=waypoints_ego[0],
            steer_class=int(steer_class[0]),
            steer_probs=steer_probs[0].astype(np.float32),
            preprocess_ms=(preprocessed - start) * 1e3,
            inference_ms=(inferred - preprocessed) * 1e3,
            ood_score=None if ood_score is None else float(ood_score[0]),
            domain_logit=None if domain_logit is None else float(domain_logit[0]),
            target_speed_probs=None if target_speed_probs is None else target_speed_probs[0].astype(np.float32),
        )

    def _fill_inputs(self, frame: FrameInputs) -> None:
        contract = self.contract
        camera_rgb = prepare_camera_rgb(np.asarray(frame.image_rgb), contract)  # (H, W, 3) uint8
        # contract.image_to_input's layout ((3, H, W) float32 0..255), written into the
        # preallocated buffer instead of a new array.
        np.copyto(self._inputs[INPUT_IMAGE][0], np.moveaxis(camera_rgb, -1, -3), casting="unsafe")

        if INPUT_LIDAR_BEV in self._inputs:
            if frame.lidar_points_ego is None:
                self._inputs[INPUT_LIDAR_BEV].fill(0.0)  # "no LiDAR": the all-zero BEV of real-domain data
            else:
                self._inputs[INPUT_LIDAR_BEV][0] = lidar_bev_from_points(frame.lidar_points_ego, contract)

        target = np.asarray(frame.target_point_ego, dtype=np.float32)
        if target.shape != (2,) or not np.isfinite(target).all():
            raise ContractError(
                f"target point {frame.target_point_ego!r} is invalid; expected 2 finite numbers (x, y) in base_link metres"
            )
        speed_mps = float(frame.speed_mps)
        if not np.isfinite(speed_mps):
            raise ContractError(f"speed {frame.speed_mps!r} m/s is not finite")
        if INPUT_TARGET_POINT in self._inputs:
            self._inputs[INPUT_TARGET_POINT][0] = target
        if INPUT_SPEED in self._inputs:
            self._inputs[INPUT_SPEED][0, 0] = speed_mps
        if INPUT_COMMAND in self._inputs:
            self._inputs[INPUT_COMMAND][0] = command_one_hot(frame.command, contract)

    def close(self) -> None:
        self.backend.close()


def load_policy(
    model_path: str, *, domain: str | None = None, backend: str = "auto", **backend_options
) -> DrivingPolicy:
    """Open a model artifact (.engine/.plan, .onnx or a .pt checkpoint) as a DrivingPolicy.

    domain: "sim" | "real" the caller drives in; a model exported for the other domain is refused
    (as is one whose contract differs from `backend_options["contract"]` when given).
    backend: "auto" (from the file suffix), "onnxruntime", "tensorrt" or "torch".
    """
    return DrivingPolicy(load_backend(Path(model_path), backend, domain=domain, **backend_options))

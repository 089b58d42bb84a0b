"""The target-speed head's use in control, as CARLA Garage's TransFuser++ agent does it
(team_code/sensor_agent.py with uncertainty weighting, model.py control_pid_direct): brake when the
head gives the brake class (target speed 0) more than `BRAKE_PROBABILITY_THRESHOLD`, else drive at
the probability-weighted mean of the class speeds."""

from __future__ import annotations

import numpy as np

from min2real.contract import TARGET_SPEEDS_MPS

BRAKE_PROBABILITY_THRESHOLD = 0.5  # Garage config.brake_uncertainty_threshold
HEAD_BRAKE_SPEED_MPS = 0.01  # Garage control_pid_direct: a target speed below this brakes


def confidence_weighted_target_speed(
    target_speed_probs: np.ndarray, brake_probability_threshold: float = BRAKE_PROBABILITY_THRESHOLD
) -> float:
    """(len(TARGET_SPEEDS_MPS),) class probabilities -> the target speed in m/s (0.0 = brake)."""
    probs = np.asarray(target_speed_probs, dtype=np.float64).reshape(-1)
    if probs.shape != (len(TARGET_SPEEDS_MPS),) or not np.isfinite(probs).all():
        raise ValueError(
            f"target-speed probabilities {probs.tolist()}; expected {len(TARGET_SPEEDS_MPS)} finite values "
            f"over {TARGET_SPEEDS_MPS} m/s"
        )
    if probs[0] > brake_probability_threshold:
        return 0.0
    return float(probs @ np.asarray(TARGET_SPEEDS_MPS, dtype=np.float64))

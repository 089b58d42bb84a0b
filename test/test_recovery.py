"""Garage's creep when stuck: only after standing for the threshold, only while the LiDAR safety box
ahead of the bumper is empty, never without LiDAR, and it re-arms when an obstacle appears."""

from __future__ import annotations

import numpy as np
import pytest

from min2real.runtime.recovery import CreepConfig, SafetyBox, StuckCreep
from min2real.runtime.types import VehicleControl

BRAKE = VehicleControl(steer=0.1, throttle=0.0, brake=1.0)
EMPTY = np.array([[30.0, 0.0, 1.0], [3.0, 5.0, 1.0], [3.0, 0.0, 0.1]])  # far, to the side, on the ground
OBSTACLE = np.vstack([EMPTY, [[3.5, 0.2, 1.0]]])  # 1.2 m ahead of the bumper, in the lane, 1 m high
DT = 0.05


def _stand(creep: StuckCreep, seconds: float, points) -> list[VehicleControl]:
    return [creep.apply(BRAKE, 0.0, DT, points) for _ in range(round(seconds / DT))]


def test_creeps_after_standing_long_with_nothing_ahead_then_hands_back():
    creep = StuckCreep(CreepConfig(stuck_after_s=5.0, creep_for_s=1.0))
    assert all(c == BRAKE for c in _stand(creep, 5.0, EMPTY))  # not yet stuck
    creeping = _stand(creep, 1.0, EMPTY)  # Garage's 1 s of creep
    assert all(c.throttle >= 0.4 and c.brake == 0.0 for c in creeping) and creep.creeps == 1
    assert all(c.steer == BRAKE.steer for c in creeping)  # steering stays the controller's
    assert creep.apply(BRAKE, 2.0, DT, EMPTY) == BRAKE and creep.stood_s == 0.0  # moving resets


def test_never_creeps_into_an_obstacle_or_without_lidar():
    creep = StuckCreep(CreepConfig(stuck_after_s=5.0))
    commands = _stand(creep, 8.0, OBSTACLE)
    assert all(c.throttle == 0.0 and c.brake == 1.0 for c in commands) and creep.blocked_by_obstacle > 0
    after = _stand(creep, 0.5, EMPTY)  # the obstacle left: the re-armed creep goes
    assert after[0].throttle >= 0.4
    blind = StuckCreep(CreepConfig(stuck_after_s=5.0))
    assert all(c == BRAKE for c in _stand(blind, 8.0, None))  # "nothing ahead" unknown: no creep


def test_garage_defaults_and_refusals():
    config = CreepConfig()
    assert (config.stuck_after_s, config.creep_for_s, config.creep_throttle) == (55.0, 1.0, 0.4)
    assert SafetyBox().occupied(OBSTACLE) and not SafetyBox().occupied(EMPTY)
    with pytest.raises(ValueError, match="base_link"):
        SafetyBox().occupied(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="creep_throttle"):
        CreepConfig(creep_throttle=0.0)

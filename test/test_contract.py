"""The contract: sizes, frames, BEV, steering rule, serialisation. Signs here are safety facts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from min2real import contract as c


def test_default_contract_matches_paper_and_garage():
    default = c.DEFAULT_CONTRACT
    assert (default.camera_height, default.camera_width) == (384, 1024)
    assert default.dino_height % 14 == 0 and default.dino_width % 14 == 0
    assert (default.bev_size_px, default.bev_pixels_per_meter, default.bev_range_m) == (256, 4.0, 32.0)
    assert default.num_waypoints == 8 and default.waypoint_dt_s == 0.5 and default.horizon_s == 4.0
    assert default.input_shapes()[c.INPUT_IMAGE] == (1, 3, 384, 1024)
    assert default.output_shapes(2)[c.OUTPUT_WAYPOINTS] == (2, 8, 2)


def test_contract_rejects_sizes_that_are_not_patch_multiples():
    with pytest.raises(c.ContractError, match="dino_width=600"):
        c.Contract(dino_width=600)
    with pytest.raises(c.ContractError, match="bev_size_px"):
        c.Contract(bev_size_px=100)


def test_contract_json_round_trip_and_differences():
    text = c.TINY_CONTRACT.to_json()
    assert c.Contract.from_json(text) == c.TINY_CONTRACT
    diffs = c.DEFAULT_CONTRACT.differences(c.TINY_CONTRACT)
    assert any(d.startswith("camera_height") for d in diffs)
    with pytest.raises(c.ContractError, match="unknown fields"):
        c.Contract.from_dict({**c.DEFAULT_CONTRACT.to_dict(), "bogus": 1})


def test_camera_crop_keeps_contract_aspect_for_navsim_and_stitched_images():
    top, left, h, w = c.camera_crop_box((1080, 1920))  # NAVSIM front camera
    assert left == 0 and w == 1920 and abs(w / h - 1024 / 384) < 0.01 and top == (1080 - h) // 2
    top, left, h, w = c.camera_crop_box((256, 1024 * 4))  # very wide stitch: crop columns
    assert top == 0 and h == 256 and abs(w / h - 1024 / 384) < 0.01
    image = np.zeros((1080, 1920, 3), np.uint8)
    image[:, :960] = 255  # left half white
    prepared = c.prepare_camera_rgb(image)
    assert prepared.shape == (384, 1024, 3) and prepared.dtype == np.uint8
    assert prepared[:, :500].min() == 255 and prepared[:, 530:].max() == 0
    with pytest.raises(c.ContractError, match="expected \\(H, W, 3\\) uint8 RGB"):
        c.prepare_camera_rgb(np.zeros((10, 10, 4), np.uint8))


def test_image_to_input_layout():
    image = np.zeros((2, 4, 3), np.uint8)
    image[..., 0] = 200  # red
    tensor = c.image_to_input(image)
    assert tensor.shape == (3, 2, 4) and tensor.dtype == np.float32
    assert tensor[0].min() == 200 and tensor[1].max() == 0


def test_carla_to_rep103_flips_only_y():
    carla_points = np.array([[10.0, 2.0, 1.0], [5.0, -3.0, 0.5]])
    ros = c.carla_to_rep103(carla_points)
    np.testing.assert_allclose(ros, [[10.0, -2.0, 1.0], [5.0, 3.0, 0.5]])
    np.testing.assert_allclose(carla_points[0], [10.0, 2.0, 1.0])  # input untouched


def test_world_to_ego_left_is_positive_y():
    # Ego at (10, 5) heading north (+90 deg); a point to the west is on its left.
    ego_xy, yaw = np.array([10.0, 5.0]), math.pi / 2
    ego = c.world_to_ego_xy(np.array([[10.0, 8.0], [7.0, 5.0]]), ego_xy, yaw)
    np.testing.assert_allclose(ego, [[3.0, 0.0], [0.0, 3.0]], atol=1e-12)


def test_yaw_from_quaternion():
    half = math.radians(30) / 2
    assert c.yaw_from_quaternion_wxyz(np.array([math.cos(half), 0, 0, math.sin(half)])) == pytest.approx(
        math.radians(30)
    )


def test_lidar_bev_orientation_counts_and_clipping():
    points = np.array(
        [[10.0, 0.0, 1.0]] * 7  # 7 points ahead, above the split height: clipped at 5
        + [[0.0, 10.0, 1.0]]  # one point to the left
        + [[0.0, -10.0, 0.0]]  # one ground point to the right (below split)
        + [[np.nan, 0.0, 1.0], [100.0, 0.0, 1.0]],  # NaN and out of range: dropped
        dtype=np.float32,
    )
    bev = c.lidar_bev_from_points(points, c.DEFAULT_CONTRACT)
    assert bev.shape == (1, 256, 256)
    row_ahead, col_centre = int((32 - 10) * 4), int(32 * 4)
    assert bev[0, row_ahead, col_centre] == 1.0  # 7 clipped to 5, divided by 5
    assert bev[0, int(32 * 4), int((32 - 10) * 4)] == pytest.approx(0.2)  # left is left of centre
    assert bev.sum() == pytest.approx(1.2)  # the ground point is in "below", not in "above"
    two_channel = c.Contract(bev_channels=("below", "above"))
    bev2 = c.lidar_bev_from_points(points, two_channel)
    assert bev2[0, 128, int((32 + 10) * 4)] == pytest.approx(0.2)
    assert c.lidar_bev_from_points(np.zeros((0, 3), np.float32)).sum() == 0


def _arc(turn_deg: float, length_m: float = 30.0, n: int = 8) -> np.ndarray:
    """Waypoints along a circular arc turning by turn_deg (positive = left) over length_m."""
    s = np.linspace(length_m / n, length_m, n)
    if abs(turn_deg) < 1e-9:
        return np.stack([s, np.zeros_like(s)], axis=1)
    radius = length_m / math.radians(abs(turn_deg))
    angle = s / radius
    y = radius * (1 - np.cos(angle)) * np.sign(turn_deg)
    return np.stack([radius * np.sin(angle), y], axis=1)


def test_steer_class_rule():
    assert c.steer_class_from_waypoints(_arc(90)) == c.STEER_LEFT
    assert c.steer_class_from_waypoints(_arc(-90)) == c.STEER_RIGHT
    assert c.steer_class_from_waypoints(_arc(0)) == c.STEER_STRAIGHT
    assert c.steer_class_from_waypoints(_arc(5)) == c.STEER_STRAIGHT
    # A lane change to the left ends parallel to the start: straight.
    lane_change = _arc(0)
    lane_change[:, 1] = 3.5 / (1 + np.exp(-(lane_change[:, 0] - 12.0)))
    lane_change[-3:, 1] = 3.5
    assert c.steer_class_from_waypoints(lane_change) == c.STEER_STRAIGHT
    # Standing still: straight, whatever the noise says.
    assert c.steer_class_from_waypoints(np.full((8, 2), 0.01) * np.arange(8)[:, None]) == c.STEER_STRAIGHT
    batch = np.stack([_arc(90), _arc(-90), _arc(0)])
    np.testing.assert_array_equal(c.steer_class_from_waypoints(batch), [1, 2, 0])


def test_future_waypoints_from_poses_navsim_rate():
    times = np.arange(0, 6.0, 0.5)  # 2 Hz
    positions = np.stack([times * 5.0, np.zeros_like(times)], axis=1)  # 5 m/s east
    waypoints = c.future_waypoints_from_poses(times, positions, 0, 0.0)
    np.testing.assert_allclose(waypoints[:, 0], 5.0 * c.DEFAULT_CONTRACT.waypoint_times_s, atol=1e-6)
    assert c.future_waypoints_from_poses(times, positions, 5, 0.0) is None  # not enough future


def test_future_waypoints_from_poses_carla_rate_uses_every_second_frame():
    times = np.arange(0, 5.0, 0.25)  # 4 Hz
    positions = np.stack([times * 2.0, times], axis=1)
    waypoints = c.future_waypoints_from_poses(times, positions, 2, 0.0)
    np.testing.assert_allclose(waypoints[0], [1.0, 0.5], atol=1e-6)  # 0.5 s later


def test_decode_outputs_and_non_finite_refusal():
    waypoints = np.zeros((1, 8, 2), np.float32)
    logits = np.array([[0.1, 3.0, 0.2]], np.float32)
    decoded, steer_class, probs = c.decode_outputs({c.OUTPUT_WAYPOINTS: waypoints, c.OUTPUT_STEER_LOGITS: logits})
    assert steer_class[0] == c.STEER_LEFT and probs.sum() == pytest.approx(1.0)
    waypoints[0, 3, 1] = np.nan
    with pytest.raises(c.ContractError, match="non-finite"):
        c.decode_outputs({c.OUTPUT_WAYPOINTS: waypoints, c.OUTPUT_STEER_LOGITS: logits})
    with pytest.raises(c.ContractError, match="expected \\(B, 8, 2\\)"):
        c.decode_outputs({c.OUTPUT_WAYPOINTS: np.zeros((1, 4, 2)), c.OUTPUT_STEER_LOGITS: logits})


def test_command_one_hot_and_carla_mapping():
    np.testing.assert_array_equal(c.command_one_hot(None), [0, 0, 0, 1])
    assert c.command_one_hot(c.CARLA_ROAD_OPTION_TO_COMMAND[4]).argmax() == c.COMMAND_STRAIGHT
    with pytest.raises(c.ContractError, match="driving command 7"):
        c.command_one_hot(7)


def test_artifact_metadata_round_trip_and_compatibility():
    metadata = c.ArtifactMetadata(
        contract=c.TINY_CONTRACT,
        variant="min2real",
        domain="sim",
        weights={"dinov2": "none"},
        checkpoint_sha256="ab" * 32,
        package_versions={"torch": "2.14.1"},
        input_shapes=c.TINY_CONTRACT.input_shapes(),
        output_shapes=c.TINY_CONTRACT.output_shapes(),
    )
    restored = c.ArtifactMetadata.from_json(metadata.to_json())
    assert restored == metadata
    restored.check_compatible(domain="sim", contract=c.TINY_CONTRACT)
    with pytest.raises(c.ContractError, match="exported for domain 'sim' but 'real'"):
        restored.check_compatible(domain="real")
    with pytest.raises(c.ContractError, match="camera_height"):
        restored.check_compatible(contract=c.DEFAULT_CONTRACT)
    with pytest.raises(c.ContractError, match="domain 'mars'"):
        c.ArtifactMetadata(**{**metadata.__dict__, "domain": "mars"})

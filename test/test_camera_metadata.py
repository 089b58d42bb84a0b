"""The training camera travels with the model: CameraSpec (focal length at the model input),
ArtifactMetadata.source_camera, export from the checkpoint's data, and the CARLA leaderboard
agent requesting exactly that camera (equal focal length at the model input on both sides)."""

from __future__ import annotations

import math
import os

os.environ.setdefault("TIMM_FUSED_ATTN", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from min2real import contract as C  # noqa: E402
from min2real.contract import CARLA_GARAGE_CAMERA, DEFAULT_CONTRACT, TINY_CONTRACT, CameraSpec  # noqa: E402


def _column_of_a_ray(camera: CameraSpec, angle_deg: float, contract: C.Contract) -> float:
    """Render a vertical line at horizontal angle `angle_deg` (left of the axis) with `camera`,
    put it through the contract's crop/resize and return the line's column at the model input
    (continuous image coordinates: pixel j spans [j, j + 1))."""
    u = 0.5 * camera.width_px - camera.focal_length_px * math.tan(math.radians(angle_deg))
    centres = np.arange(camera.width_px) + 0.5
    intensity = np.clip(1.0 - np.abs(centres - u), 0.0, 1.0)  # one anti-aliased pixel column
    image = np.repeat((255 * intensity).astype(np.uint8)[None, :, None], camera.height_px, axis=0).repeat(3, axis=2)
    model_input = C.prepare_camera_rgb(image, contract)[:, :, 0].astype(np.float64).mean(axis=0)
    return float((model_input * (np.arange(contract.camera_width) + 0.5)).sum() / model_input.sum())


def _measured_focal_length_px(camera: CameraSpec, contract: C.Contract, angle_deg: float = 30.0) -> float:
    """Focal length at the model input measured on pixels: the columns of rays at -angle and +angle."""
    spread = _column_of_a_ray(camera, -angle_deg, contract) - _column_of_a_ray(camera, angle_deg, contract)
    return spread / (2.0 * math.tan(math.radians(angle_deg)))


def test_garage_camera_at_the_model_input():
    # The numbers: Garage's 1024 x 256 at 110 degrees, cropped to 683 x 256 and scaled 1.5x.
    assert CARLA_GARAGE_CAMERA.focal_length_px == pytest.approx(358.5, abs=0.1)
    assert CARLA_GARAGE_CAMERA.model_input_focal_length_px(DEFAULT_CONTRACT) == pytest.approx(537.5, abs=0.1)
    assert CARLA_GARAGE_CAMERA.model_input_fov_deg(DEFAULT_CONTRACT) == pytest.approx(87.2, abs=0.05)
    # The camera the agent used to request (1024 x 384, no crop) shows objects at 2/3 of that size.
    previous = CameraSpec(1024, 384, 110.0)
    assert previous.model_input_focal_length_px() / CARLA_GARAGE_CAMERA.model_input_focal_length_px() == (
        pytest.approx(2 / 3, abs=0.01)
    )
    # Measured on pixels: rays 30 degrees either side land where the model-input focal length says.
    for camera, contract in ((CARLA_GARAGE_CAMERA, DEFAULT_CONTRACT), (previous, DEFAULT_CONTRACT)):
        assert _measured_focal_length_px(camera, contract) == pytest.approx(
            camera.model_input_focal_length_px(contract), rel=3e-3
        )
    assert _measured_focal_length_px(CARLA_GARAGE_CAMERA, TINY_CONTRACT) == pytest.approx(
        CARLA_GARAGE_CAMERA.model_input_focal_length_px(TINY_CONTRACT), rel=1e-2
    )


def test_camera_spec_validation_and_carla_attributes():
    attributes = CARLA_GARAGE_CAMERA.carla_attributes()
    assert (attributes["image_size_x"], attributes["image_size_y"], attributes["fov"]) == (1024, 256, 110.0)
    assert attributes["lens_circle_multiplier"] == 3.0 and attributes["chromatic_aberration_intensity"] == 0.5
    assert CameraSpec.from_dict(CARLA_GARAGE_CAMERA.to_dict()) == CARLA_GARAGE_CAMERA
    with pytest.raises(C.ContractError, match="fov_deg 180"):
        CameraSpec(1024, 256, 180.0)
    with pytest.raises(C.ContractError, match="whole numbers"):
        CameraSpec(1024, 0, 90.0)
    with pytest.raises(C.ContractError, match="width_px, height_px, fov_deg"):
        CameraSpec.from_dict({"width": 1024, "height": 256, "fov": 110})


def _metadata(source_camera=None) -> C.ArtifactMetadata:
    return C.ArtifactMetadata(
        contract=TINY_CONTRACT,
        variant="min2real",
        domain="sim",
        weights={},
        checkpoint_sha256="",
        package_versions={},
        input_shapes=TINY_CONTRACT.input_shapes(),
        output_shapes=TINY_CONTRACT.output_shapes(),
        source_camera=source_camera,
    )


def test_metadata_carries_the_source_camera_and_old_artifacts_still_load():
    import json

    restored = C.ArtifactMetadata.from_json(_metadata(CARLA_GARAGE_CAMERA).to_json())
    assert restored.source_camera == CARLA_GARAGE_CAMERA
    old = json.loads(_metadata().to_json())
    del old["source_camera"]  # written before the field existed
    assert C.ArtifactMetadata.from_json(json.dumps(old)).source_camera is None


def test_export_finds_the_source_camera_in_the_training_data(tmp_path):
    from min2real.data.synthetic import write_synthetic_dataset
    from min2real.export import source_camera_from_checkpoint

    garage = tmp_path / "garage" / "Town01_Scenario1" / "route_000"
    (garage / "measurements").mkdir(parents=True)
    checkpoint = {"train_config": {"data": {"sim_roots": [str(tmp_path / "garage")]}}}
    assert source_camera_from_checkpoint(checkpoint, TINY_CONTRACT) == CARLA_GARAGE_CAMERA

    write_synthetic_dataset(
        tmp_path / "synth", seed=1, frames=2, routes=1, sim_image_size=(320, 120), domains=("sim",),
        contract=TINY_CONTRACT,
    )  # fmt: skip
    synthetic = source_camera_from_checkpoint(
        {"train_config": {"data": {"sim_roots": [str(tmp_path / "synth" / "carla")]}}}, TINY_CONTRACT
    )
    assert (synthetic.width_px, synthetic.height_px) == (320, 120)
    from min2real.data.synthetic.render import CAMERA_HFOV_DEG

    assert synthetic.model_input_fov_deg(TINY_CONTRACT) == pytest.approx(CAMERA_HFOV_DEG)

    named = {"train_config": {"data": {"sim_roots": ["x"], "sim_camera": "800x600@90"}}}
    assert source_camera_from_checkpoint(named, TINY_CONTRACT) == CameraSpec(800, 600, 90.0)
    assert source_camera_from_checkpoint({"train_config": {"data": {"real_roots": ["n"]}}}, TINY_CONTRACT) is None
    gone = {"train_config": {"data": {"sim_roots": [str(tmp_path / "elsewhere")]}}}
    assert source_camera_from_checkpoint(gone, TINY_CONTRACT) is None


def test_the_training_config_names_the_recording_camera_and_export_reads_it(tmp_path):
    """data.sim_camera (WIDTHxHEIGHT@FOV_DEG) travels in the checkpoint's train_config; without it,
    sim roots that mix synthetic and Garage-like folders cannot tell the camera: a clear error."""
    from min2real.contract import ContractError
    from min2real.data import DataConfigError, DataSection
    from min2real.data.config import camera_text, parse_camera
    from min2real.data.synthetic import write_synthetic_dataset
    from min2real.export import source_camera_from_checkpoint
    from min2real.training.config import TrainConfig

    camera = CameraSpec(256, 96, 100.0)
    assert parse_camera(camera_text(camera)) == camera and camera_text(camera) == "256x96@100"
    for bad in ("256x96", "256@100", "axb@1", "256x96@180"):
        with pytest.raises(DataConfigError, match="data.sim_camera: camera .* is not WIDTHxHEIGHT@FOV_DEG"):
            DataSection(sim_camera=bad).validate()
    write_synthetic_dataset(
        tmp_path / "synth", seed=1, frames=2, routes=1, sim_image_size=(320, 120), domains=("sim",),
        contract=TINY_CONTRACT,
    )  # fmt: skip
    unmarked = tmp_path / "unmarked" / "route_000"
    unmarked.mkdir(parents=True)
    roots = [str(tmp_path / "synth" / "carla"), str(tmp_path / "unmarked")]
    with pytest.raises(ContractError, match="data.sim_camera=WIDTHxHEIGHT@FOV_DEG, or export with --source-camera"):
        source_camera_from_checkpoint({"train_config": {"data": {"sim_roots": roots}}}, TINY_CONTRACT)
    config = TrainConfig.load(
        "training/tiny.yaml", [f"data.sim_roots=[{','.join(roots)}]", "data.sim_camera=256x96@100"]
    )
    checkpoint = {"train_config": config.to_dict()}
    assert source_camera_from_checkpoint(checkpoint, TINY_CONTRACT) == camera


def test_agent_requests_the_exported_models_camera_same_focal_length_at_the_input(monkeypatch, tmp_path):
    """Checkpoint trained on CARLA Garage data -> `min2real export` -> the ONNX model's metadata ->
    the leaderboard agent's sensors() (through Garage's evaluator sequence) -> the camera CARLA
    renders: its focal length at the model input equals the one the loader gave the training images."""
    import leaderboard_stand_ins as lb
    import torch

    from min2real.agents import carla_leaderboard_agent as carla_agent
    from min2real.export import export_onnx
    from min2real.models.checkpoint import CHECKPOINT_FORMAT
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config

    garage = tmp_path / "garage" / "Town01_Scenario1" / "route_000"
    (garage / "measurements").mkdir(parents=True)
    torch.manual_seed(0)
    config = variant_config("min2real", tiny=True)
    model = build_model(config, TINY_CONTRACT)
    checkpoint = tmp_path / "best.pt"
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "model_config": config.to_dict(),
            "contract": TINY_CONTRACT.to_dict(),
            "train_config": {"data": {"sim_roots": [str(tmp_path / "garage")]}},
        },
        checkpoint,
    )
    onnx_path = tmp_path / "tiny_sim.onnx"
    report = export_onnx(checkpoint, "sim", onnx_path, exporter="legacy")
    assert report.metadata.source_camera == CARLA_GARAGE_CAMERA
    # The checkpoint run directly (torch backend, what the agent loads for a .pt) names the same camera.
    from min2real.runtime.backends.torch_backend import TorchBackend

    assert TorchBackend(checkpoint, domain="sim", warmup=0).metadata.source_camera == CARLA_GARAGE_CAMERA
    assert TorchBackend(checkpoint, domain="real", warmup=0).metadata.source_camera is None

    lb.install(monkeypatch, lb.GarageAutonomousAgent)
    monkeypatch.delitem(carla_agent.__dict__, "Min2RealAgent", raising=False)
    plan_world = np.stack([np.zeros(60), -np.arange(60.0)], axis=1)
    plan_gps = carla_agent.carla_world_to_gps(plan_world)
    agent, sensors = lb.garage_evaluator_start(
        carla_agent,
        str(onnx_path),
        [({"lat": lat, "lon": lon, "z": 0.0}, lb.RoadOption.LANEFOLLOW) for lat, lon in plan_gps],
        [(lb.transform(x, y), lb.RoadOption.LANEFOLLOW) for x, y in plan_world],
    )
    spec = {sensor["id"]: sensor for sensor in sensors}["rgb_front"]
    requested = CameraSpec(spec["width"], spec["height"], spec["fov"])
    contract = agent.contract
    training_focal_px = CARLA_GARAGE_CAMERA.model_input_focal_length_px(contract)
    assert requested.model_input_focal_length_px(contract) == pytest.approx(training_focal_px, rel=1e-9)
    # And the real policy drives on what that camera delivers.
    rng = np.random.default_rng(0)
    lat, lon = plan_gps[0]
    data = {
        "rgb_front": (0, rng.integers(0, 255, (spec["height"], spec["width"], 4), dtype=np.uint8)),
        "lidar": (0, rng.uniform(-20, 20, (300, 4)).astype(np.float32)),
        "gps": (0, np.array([lat, lon, 0.0])),
        "imu": (0, np.array([0.0, 0.0, 9.81, 0.0, 0.0, 0.0, 0.0])),
        "speed": (0, {"speed": 0.0}),
    }
    agent.run_step(data, 0.05)
    control = agent.run_step({**data, "gps": (1, data["gps"][1])}, 0.10)
    assert all(math.isfinite(v) for v in (control.steer, control.throttle, control.brake))
    assert agent.last_prediction.waypoints_ego.shape == (TINY_CONTRACT.num_waypoints, 2)
    lb.garage_evaluator_cleanup(agent, None)

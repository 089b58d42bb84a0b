"""On-disk writers of the synthetic world: the sim domain in the CARLA Garage layout (4 Hz) and the
real domain in the OpenScene/NAVSIM layout (2 Hz), so the real loaders run end to end on it."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from min2real import contract as C
from min2real.data.carla_garage import EXPERT_WAYPOINTS_KEY
from min2real.data.common import write_image_rgb
from min2real.data.synthetic.drive import (
    CARLA_RATE_HZ,
    DEFAULT_REAL_IMAGE_SIZE,
    DEFAULT_SIM_IMAGE_SIZE,
    NAVSIM_RATE_HZ,
    SyntheticDrive,
    SyntheticFrame,
)
from min2real.data.synthetic.render import REAL, SIM
from min2real.data.synthetic.traffic_labels import LIGHT_HAZARD_M, garage_boxes, navsim_annotations


def _write_laz(path: Path, points_xyz: np.ndarray, intensity: np.ndarray) -> None:
    import laspy

    header = laspy.LasHeader(point_format=0, version="1.2")
    header.offsets = points_xyz.min(axis=0) if len(points_xyz) else np.zeros(3)
    header.scales = np.array([0.001, 0.001, 0.001])
    las = laspy.LasData(header)
    las.x, las.y, las.z = points_xyz[:, 0], points_xyz[:, 1], points_xyz[:, 2]
    las.intensity = np.clip(intensity * 65535, 0, 65535).astype(np.uint16)
    las.write(str(path), laz_backend=laspy.LazBackend.Lazrs)  # no thread pool: see carla_garage.read_laz_xyz


def write_pcd(path: str | Path, points: np.ndarray) -> None:
    """Binary PCD with float32 fields x, y, z, intensity (the layout of OpenScene's merged clouds)."""
    points = np.ascontiguousarray(points[:, :4], dtype=np.float32)
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\n"
        f"TYPE F F F F\nCOUNT 1 1 1 1\nWIDTH {len(points)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {len(points)}\nDATA binary\n"
    )
    Path(path).write_bytes(header.encode("ascii") + points.tobytes())


def _carla_measurement(frame: SyntheticFrame, next_frame: SyntheticFrame | None) -> dict:
    """CARLA Garage measurement fields of a frame, in CARLA's axes (left-handed world, ego y right).
    Written with `carla_to_rep103`, which is its own inverse (it flips y)."""
    x, y, yaw = frame.pose_world
    position_carla = C.carla_to_rep103(np.array([x, y]))
    yaw_carla = -yaw
    c, s = math.cos(yaw_carla), math.sin(yaw_carla)
    ego_matrix = [
        [c, -s, 0.0, float(position_carla[0])],
        [s, c, 0.0, float(position_carla[1])],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
    route_ego = C.world_to_ego_xy(frame.route_world, np.array([x, y]), yaw)
    ahead = np.flatnonzero(route_ego[:, 0] > 0)[:20]
    target_carla = C.carla_to_rep103(frame.target_point_ego.astype(np.float64))
    next_speed = next_frame.speed_mps if next_frame is not None else frame.speed_mps
    aim = frame.waypoints_ego[min(1, len(frame.waypoints_ego) - 1)]
    steer_carla = float(np.clip(-math.degrees(math.atan2(aim[1], max(aim[0], 1e-3))) / 90.0, -1.0, 1.0))
    traffic = frame.traffic
    target_speed = traffic.target_speed_mps if traffic is not None else next_speed
    brake = traffic.brake if traffic is not None else next_speed < frame.speed_mps - 0.2
    light_state = traffic.light_state if traffic is not None else "none"
    light_near = traffic is not None and traffic.light_distance_m < LIGHT_HAZARD_M
    return {
        "pos_global": [float(position_carla[0]), float(position_carla[1])],
        "theta": yaw_carla,
        "speed": frame.speed_mps,
        "target_speed": target_speed,
        "target_point": target_carla.tolist(),
        "target_point_next": target_carla.tolist(),
        "command": frame.road_option,
        "next_command": frame.road_option,
        "aim_wp": C.carla_to_rep103(aim.astype(np.float64)).tolist(),
        "route": C.carla_to_rep103(route_ego[ahead]).tolist(),
        "steer": steer_carla,
        "throttle": 0.5 if next_speed > frame.speed_mps + 0.05 and not brake else 0.0,
        "brake": bool(brake),
        "junction": frame.in_junction,
        "vehicle_hazard": False,
        "light_hazard": bool(light_near and light_state in ("red", "yellow")),
        "traffic_light_state": light_state,
        "walker_hazard": False,
        "stop_sign_hazard": False,
        "angle": steer_carla,
        "augmentation_translation": 0.0,
        "augmentation_rotation": 0.0,
        "ego_matrix": ego_matrix,
        **({EXPERT_WAYPOINTS_KEY: C.carla_to_rep103(frame.waypoints_ego.astype(np.float64)).tolist()}
           if frame.waypoints_from_expert else {}),
    }  # fmt: skip


def write_carla_route(
    route_dir: Path, drive: SyntheticDrive, num_labelled: int, score: float = 100.0, results: dict | None = None
) -> int:
    """One CARLA Garage route folder at 4 Hz: rgb/%04d.jpg, rgb_augmented/%04d.jpg (Garage's shifted and
    rotated camera, SyntheticDrive.augmented_view), lidar/%04d.laz (ego frame, CARLA axes),
    measurements/%04d.json.gz, results.json.gz (`results`: its content; default: the expert's
    route scored `score`). Returns the number of frames written."""
    total = drive.frames_with_tail(num_labelled, CARLA_RATE_HZ)
    for sub in ("rgb", "rgb_augmented", "lidar", "measurements"):
        (route_dir / sub).mkdir(parents=True, exist_ok=True)
    frames = [drive.frame(0, CARLA_RATE_HZ)]
    for index in range(total):
        frame = frames.pop(0)
        next_frame = drive.frame(index + 1, CARLA_RATE_HZ) if index + 1 < total else None
        if next_frame is not None:
            frames.append(next_frame)
        write_image_rgb(route_dir / "rgb" / f"{index:04d}.jpg", frame.image_rgb)
        augmented_rgb, translation_m, rotation_deg = drive.augmented_view(index, CARLA_RATE_HZ)
        write_image_rgb(route_dir / "rgb_augmented" / f"{index:04d}.jpg", augmented_rgb)
        if frame.lidar_points_ego is not None:
            points = frame.lidar_points_ego.astype(np.float64)
            _write_laz(route_dir / "lidar" / f"{index:04d}.laz", C.carla_to_rep103(points[:, :3]), points[:, 3])
        if frame.traffic is not None:
            (route_dir / "boxes").mkdir(exist_ok=True)
            with gzip.open(route_dir / "boxes" / f"{index:04d}.json.gz", "wt", encoding="utf-8") as handle:
                json.dump(garage_boxes(frame), handle)
        measurement = _carla_measurement(frame, next_frame)
        measurement.update(augmentation_translation=translation_m, augmentation_rotation=rotation_deg)
        with gzip.open(route_dir / "measurements" / f"{index:04d}.json.gz", "wt", encoding="utf-8") as handle:
            json.dump(measurement, handle)
    results = results or {
        "scores": {"score_composed": score, "score_route": 100.0, "score_penalty": score / 100.0},
        "status": "Completed" if score >= 100.0 else "Failed",
        "num_infractions": 0,
    }
    with gzip.open(route_dir / "results.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(results, handle)
    return total


def write_navsim_log(
    root: Path, split: str, log_name: str, drive: SyntheticDrive, num_labelled: int, log_index: int
) -> int:
    """One NAVSIM log at 2 Hz: navsim_logs/<split>/<log>.pkl (list of frame dicts) and
    sensor_blobs/<split>/<log>/<CAM>/<token>.jpg (+ MergedPointCloud/<token>.pcd with LiDAR)."""
    total = drive.frames_with_tail(num_labelled, NAVSIM_RATE_HZ)
    blobs = root / "sensor_blobs" / split
    for camera in drive.cameras:
        (blobs / log_name / camera).mkdir(parents=True, exist_ok=True)
    if drive.lidar:
        (blobs / log_name / "MergedPointCloud").mkdir(parents=True, exist_ok=True)
    (root / "navsim_logs" / split).mkdir(parents=True, exist_ok=True)
    start_us = 1_600_000_000_000_000 + log_index * 3_600_000_000
    records = []
    for index in range(total):
        frame = drive.frame(index, NAVSIM_RATE_HZ)
        token = hashlib.sha1(f"{drive.seed}/{index}".encode()).hexdigest()[:16]
        images = {"CAM_F0": frame.image_rgb, **frame.side_images}
        cams = {}
        for name, image in images.items():
            relative = f"{log_name}/{name}/{token}.jpg"
            write_image_rgb(blobs / relative, image)
            cams[name] = {
                "data_path": relative,
                "sensor2lidar_rotation": np.eye(3),
                "sensor2lidar_translation": np.zeros(3),
                "cam_intrinsic": drive.cameras[name].intrinsics,
                "distortion": np.zeros(5),
            }
        lidar_path = f"{log_name}/MergedPointCloud/{token}.pcd"
        if frame.lidar_points_ego is not None:
            write_pcd(blobs / lidar_path, frame.lidar_points_ego)
        x, y, yaw = frame.pose_world
        records.append(
            {
                "token": token,
                "timestamp": int(start_us + round(frame.timestamp_s * 1e6)),
                "log_name": log_name,
                "frame_idx": index,
                "ego2global_translation": np.array([x, y, 0.0]),
                "ego2global_rotation": np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]),
                "ego_dynamic_state": [frame.speed_mps, 0.0, 0.0, 0.0],
                "driving_command": C.command_one_hot(frame.command).astype(np.int64),
                "cams": cams,
                "lidar_path": lidar_path,
                "lidar2ego_translation": np.zeros(3),
                "lidar2ego_rotation": np.array([1.0, 0.0, 0.0, 0.0]),
                "anns": navsim_annotations(frame),
                "map_location": "synthetic",
                "roadblock_ids": [],
                "traffic_lights": [],
            }
        )
    with (root / "navsim_logs" / split / f"{log_name}.pkl").open("wb") as handle:
        pickle.dump(records, handle, protocol=4)
    return total


def write_synthetic_dataset(
    out_dir: str | Path,
    seed: int = 0,
    frames: int = 300,
    routes: int = 3,
    sim_image_size: tuple[int, int] = DEFAULT_SIM_IMAGE_SIZE,
    real_image_size: tuple[int, int] = DEFAULT_REAL_IMAGE_SIZE,
    domains: Sequence[str] = (SIM, REAL),
    real_cameras: Sequence[str] = ("CAM_F0",),
    real_lidar: bool = False,
    split: str = "trainval",
    contract: C.Contract = C.DEFAULT_CONTRACT,
    conditions: Sequence[str] = (),
    obstacle_share: float = 0.0,
    traffic: float = 0.0,
    traffic_drive: Callable[..., SyntheticDrive] | None = None,
) -> dict:
    """Write `frames` labelled frames per domain over `routes` routes (plus each route's tail,
    which only serves as future poses) under `out_dir`:

        carla/synthetic/route_XXX/...                 sim, CARLA Garage layout, 4 Hz
        navsim/navsim_logs/<split>/synthetic_XXX.pkl  real, OpenScene/NAVSIM layout, 2 Hz
        navsim/sensor_blobs/<split>/synthetic_XXX/CAM_F0/<token>.jpg
        synthetic.json                                what was written

    Sim and real routes use different seeds (the real domain is new scenery, as in deployment);
    `generate_drive` with one seed gives both looks of the same drive. `obstacle_share`: the share
    of routes (evenly spread: route r when floor((r + 1) * share) > floor(r * share)) that pass a
    car parked in the ego lane, as the closed-loop routes do; a route whose labelled part has no
    straight stretch for one drives without. `traffic` > 0: drives through traffic at that density,
    driven by the closed-loop expert (`traffic_drive`: min2real.evaluation.closed_loop.record.
    traffic_drive, which the CLI passes); a route the expert did not complete gets its driving
    score in results.json.gz (Garage trains only on routes scored 100), and where its drive ended
    before a labelled frame's horizon and target point (it stood blocked until the judge ended the
    route) only the frames that can be labelled are written: synthetic.json lists those routes
    (`routes_cut_short`) and counts the frames labelled.
    """
    if traffic > 0 and traffic_drive is None:
        raise ValueError(
            "synthetic dataset with traffic needs traffic_drive (the expert that drives it: "
            "min2real.evaluation.closed_loop.record.traffic_drive)"
        )
    if not 0.0 <= obstacle_share <= 1.0:
        raise ValueError(f"synthetic dataset obstacle_share={obstacle_share}; expected a share in [0, 1]")
    if routes < 1 or frames < routes:
        raise ValueError(
            f"synthetic dataset needs routes >= 1 and frames >= routes; got frames={frames} routes={routes}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_route = [frames // routes + (1 if r < frames % routes else 0) for r in range(routes)]
    summary: dict = {
        "seed": seed,
        "frames_per_domain": frames,
        "routes": routes,
        "split": split,
        "conditions": list(conditions),
        "obstacle_share": obstacle_share,
        "traffic": traffic,
        "domains": {},
    }
    for domain in domains:
        if domain not in C.DOMAINS:
            raise ValueError(f"synthetic domain {domain!r} is not supported; expected one of {C.DOMAINS}")
        rate = CARLA_RATE_HZ if domain == SIM else NAVSIM_RATE_HZ
        written = labelled_total = 0
        parked = 0
        cut_short: list[dict] = []
        for route_index, labelled in enumerate(per_route):
            obstacle = math.floor((route_index + 1) * obstacle_share) > math.floor(route_index * obstacle_share)
            drive_seed = (seed, C.DOMAINS.index(domain), route_index)
            first_turn = "left" if route_index % 2 == 0 else "right"  # every class in even a tiny dataset
            condition = conditions[route_index % len(conditions)] if conditions else None  # appearance
            score = 100.0
            size = sim_image_size if domain == SIM else real_image_size
            cameras, lidar = (("CAM_F0",), None) if domain == SIM else (tuple(real_cameras), real_lidar)
            if traffic > 0 and traffic_drive is not None:
                drive = traffic_drive(
                    drive_seed, labelled / rate, traffic, domain, size, contract, cameras, lidar, condition, obstacle, first_turn
                )  # fmt: skip
                score = drive.recording.driving_score
            else:
                drive = SyntheticDrive(
                    drive_seed, labelled / rate, domain, size, contract, cameras, lidar, first_turn, condition, obstacle
                )  # fmt: skip
            usable = drive.labellable_frames(labelled, rate)
            if usable < labelled:  # the drive ended early (an expert blocked until the judge ended it)
                cut_short.append(
                    {"route": route_index, "requested": labelled, "labelled": usable, "driving_score": score}
                )
            labelled_total += usable
            if usable == 0:
                continue
            labelled = usable
            if domain == SIM:
                written += write_carla_route(
                    out_dir / "carla" / "synthetic" / f"route_{route_index:03d}", drive, labelled, score
                )
            else:
                written += write_navsim_log(
                    out_dir / "navsim", split, f"synthetic_{route_index:03d}", drive, labelled, route_index
                )
            parked += drive.obstacle is not None
        summary["domains"][domain] = {
            "labelled_frames": labelled_total,
            "routes_cut_short": cut_short,
            "routes_with_parked_car": parked,
            "frames_written": written,
            "rate_hz": rate,
            "image_size": list(sim_image_size if domain == SIM else real_image_size),
        }
    (out_dir / "synthetic.json").write_text(json.dumps(summary, indent=2))
    return summary

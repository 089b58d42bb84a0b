"""A drive from the synthetic generator written as a rosbag2 bag in the CARLA ROS bridge layout.

Topics (role `ego_vehicle`, see docs/facts.md section 2), all stamped with the frame's
simulation time, which is also the bag timestamp:

    /clock                                   rosgraph_msgs/msg/Clock
    /carla/ego_vehicle/rgb_front/image       sensor_msgs/msg/Image (bgra8)
    /carla/ego_vehicle/rgb_front/camera_info sensor_msgs/msg/CameraInfo (the generator's exact intrinsics)
    /carla/ego_vehicle/lidar                 sensor_msgs/msg/PointCloud2 (x, y, z, intensity float32, sensor frame)
    /carla/ego_vehicle/speedometer           std_msgs/msg/Float32 (m/s)
    /carla/ego_vehicle/odometry              nav_msgs/msg/Odometry (frame map, child ego_vehicle)
    /carla/ego_vehicle/waypoints             nav_msgs/msg/Path (frame map, transient local, once)
    /tf_static                               tf2_msgs/msg/TFMessage (ego_vehicle -> camera and LiDAR mounts, once)

Messages are built as rosbags objects from the inverse helpers of `runtime.conversions` (the
same code the nodes read them with) and stored as CDR, in MCAP or sqlite3 storage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from min2real_ros.conversions import rgb_to_image_fields, xyz_to_pointcloud2_fields
from min2real_ros.replay.bag import QOS_LATCHED, QOS_RELIABLE, QOS_SENSOR, BagWriter, typestore

MSG_IMAGE = "sensor_msgs/msg/Image"
MSG_CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
MSG_POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
MSG_FLOAT32 = "std_msgs/msg/Float32"
MSG_ODOMETRY = "nav_msgs/msg/Odometry"
MSG_PATH = "nav_msgs/msg/Path"
MSG_CLOCK = "rosgraph_msgs/msg/Clock"
MSG_TF = "tf2_msgs/msg/TFMessage"

# The LiDAR mount written into the bag (CARLA Garage's, and the driver node's lidar_mount_* defaults):
# points are stored in the LiDAR frame, as the bridge publishes them.
LIDAR_MOUNT_XYZ_M = (0.0, 0.0, 2.5)  # CARLA Garage config.lidar_pos

# The bag starts at this simulation time (CARLA's clock starts near zero; a non-zero start keeps
# "time zero" from ever meaning "no stamp").
START_TIME_S = 10.0


@dataclass(frozen=True)
class BridgeTopics:
    """CARLA ROS bridge topic names for one ego vehicle role and its sensor ids."""

    role: str = "ego_vehicle"
    camera_id: str = "rgb_front"
    lidar_id: str = "lidar"
    clock: str = "/clock"
    tf_static: str = "/tf_static"

    @property
    def base_frame(self) -> str:
        """The vehicle frame (the bridge names it after the role; base_link in REP 103 terms)."""
        return self.role

    @property
    def camera_frame(self) -> str:
        return f"{self.role}/{self.camera_id}"

    @property
    def lidar_frame(self) -> str:
        return f"{self.role}/{self.lidar_id}"

    @property
    def camera(self) -> str:
        return f"/carla/{self.role}/{self.camera_id}/image"

    @property
    def camera_info(self) -> str:
        return f"/carla/{self.role}/{self.camera_id}/camera_info"

    @property
    def lidar(self) -> str:
        return f"/carla/{self.role}/{self.lidar_id}"

    @property
    def speedometer(self) -> str:
        return f"/carla/{self.role}/speedometer"

    @property
    def odometry(self) -> str:
        return f"/carla/{self.role}/odometry"

    @property
    def route(self) -> str:
        return f"/carla/{self.role}/waypoints"

    def types(self) -> dict[str, str]:
        """topic -> message type, for every topic the bridge layout has."""
        return {
            self.clock: MSG_CLOCK,
            self.camera: MSG_IMAGE,
            self.camera_info: MSG_CAMERA_INFO,
            self.lidar: MSG_POINTCLOUD2,
            self.speedometer: MSG_FLOAT32,
            self.odometry: MSG_ODOMETRY,
            self.route: MSG_PATH,
            self.tf_static: MSG_TF,
        }


@dataclass(frozen=True)
class SynthBagResult:
    path: Path
    storage: str
    num_frames: int
    counts: dict[str, int]
    duration_s: float


class _Messages:
    """Builds rosbags message objects of the bridge layout."""

    def __init__(self) -> None:
        types = typestore().types
        self.Time = types["builtin_interfaces/msg/Time"]
        self.Header = types["std_msgs/msg/Header"]
        self.Image = types[MSG_IMAGE]
        self.CameraInfo = types[MSG_CAMERA_INFO]
        self.RegionOfInterest = types["sensor_msgs/msg/RegionOfInterest"]
        self.PointCloud2 = types[MSG_POINTCLOUD2]
        self.PointField = types["sensor_msgs/msg/PointField"]
        self.Float32 = types[MSG_FLOAT32]
        self.Odometry = types[MSG_ODOMETRY]
        self.Path = types[MSG_PATH]
        self.Clock = types[MSG_CLOCK]
        self.TFMessage = types[MSG_TF]
        self.TransformStamped = types["geometry_msgs/msg/TransformStamped"]
        self.Transform = types["geometry_msgs/msg/Transform"]
        self.PoseStamped = types["geometry_msgs/msg/PoseStamped"]
        self.Pose = types["geometry_msgs/msg/Pose"]
        self.PoseWithCovariance = types["geometry_msgs/msg/PoseWithCovariance"]
        self.TwistWithCovariance = types["geometry_msgs/msg/TwistWithCovariance"]
        self.Twist = types["geometry_msgs/msg/Twist"]
        self.Point = types["geometry_msgs/msg/Point"]
        self.Quaternion = types["geometry_msgs/msg/Quaternion"]
        self.Vector3 = types["geometry_msgs/msg/Vector3"]

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        return self.Header(stamp=self.Time(sec=sec, nanosec=nanosec), frame_id=frame_id)

    def clock(self, stamp_ns: int) -> Any:
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        return self.Clock(clock=self.Time(sec=sec, nanosec=nanosec))

    def image(self, stamp_ns: int, frame_id: str, image_rgb: np.ndarray) -> Any:
        fields = rgb_to_image_fields(np.ascontiguousarray(image_rgb), "bgra8")
        return self.Image(
            header=self.header(stamp_ns, frame_id),
            height=fields.height,
            width=fields.width,
            encoding=fields.encoding,
            is_bigendian=fields.is_bigendian,
            step=fields.step,
            data=np.frombuffer(fields.data, np.uint8),
        )

    def camera_info(self, stamp_ns: int, frame_id: str, width: int, height: int, intrinsics: np.ndarray) -> Any:
        """Pinhole camera without distortion; intrinsics: (3, 3) K in pixels."""
        k = np.asarray(intrinsics, dtype=np.float64).reshape(3, 3)
        p = np.concatenate([k, np.zeros((3, 1))], axis=1)
        return self.CameraInfo(
            header=self.header(stamp_ns, frame_id),
            height=height,
            width=width,
            distortion_model="plumb_bob",
            d=np.zeros(5),
            k=k.reshape(-1),
            r=np.eye(3).reshape(-1),
            p=p.reshape(-1),
            binning_x=0,
            binning_y=0,
            roi=self.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )

    def tf_message(self, stamp_ns: int, parent: str, mounts: dict[str, tuple[float, float, float]]) -> Any:
        """Static transforms parent -> child for sensors mounted at xyz (no rotation)."""
        transforms = [
            self.TransformStamped(
                header=self.header(stamp_ns, parent),
                child_frame_id=child,
                transform=self.Transform(
                    translation=self.Vector3(x=float(x), y=float(y), z=float(z)),
                    rotation=self.Quaternion(x=0.0, y=0.0, z=0.0, w=1.0),
                ),
            )
            for child, (x, y, z) in mounts.items()
        ]
        return self.TFMessage(transforms=transforms)

    def pointcloud(self, stamp_ns: int, frame_id: str, points_xyzi: np.ndarray) -> Any:
        points = np.asarray(points_xyzi, dtype=np.float32)
        intensity = points[:, 3] if points.shape[1] > 3 else None
        fields = xyz_to_pointcloud2_fields(points[:, :3], intensity)
        return self.PointCloud2(
            header=self.header(stamp_ns, frame_id),
            height=fields.height,
            width=fields.width,
            fields=[
                self.PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in fields.fields
            ],
            is_bigendian=fields.is_bigendian,
            point_step=fields.point_step,
            row_step=fields.row_step,
            data=np.frombuffer(fields.data, np.uint8),
            is_dense=fields.is_dense,
        )

    def pose(self, x: float, y: float, yaw_rad: float) -> Any:
        return self.Pose(
            position=self.Point(x=float(x), y=float(y), z=0.0),
            orientation=self.Quaternion(x=0.0, y=0.0, z=math.sin(yaw_rad / 2.0), w=math.cos(yaw_rad / 2.0)),
        )

    def odometry(
        self, stamp_ns: int, frame_id: str, child_frame_id: str, pose_xy_yaw: np.ndarray, speed_mps: float
    ) -> Any:
        x, y, yaw = (float(v) for v in pose_xy_yaw)
        zero = self.Vector3(x=0.0, y=0.0, z=0.0)
        return self.Odometry(
            header=self.header(stamp_ns, frame_id),
            child_frame_id=child_frame_id,
            pose=self.PoseWithCovariance(pose=self.pose(x, y, yaw), covariance=np.zeros(36)),
            twist=self.TwistWithCovariance(
                twist=self.Twist(linear=self.Vector3(x=float(speed_mps), y=0.0, z=0.0), angular=zero),
                covariance=np.zeros(36),
            ),
        )

    def path(self, stamp_ns: int, frame_id: str, xy: np.ndarray) -> Any:
        points = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        # Each pose faces the next point (the last one keeps the previous heading).
        delta = np.diff(points, axis=0, append=points[-1:] + (points[-1:] - points[-2:-1] if len(points) > 1 else 1.0))
        yaws = np.arctan2(delta[:, 1], delta[:, 0])
        header = self.header(stamp_ns, frame_id)
        poses = [self.PoseStamped(header=header, pose=self.pose(px, py, yaw)) for (px, py), yaw in zip(points, yaws)]
        return self.Path(header=header, poses=poses)

    def float32(self, value: float) -> Any:
        return self.Float32(data=float(value))


@dataclass(frozen=True)
class BagCamera:
    """The camera written into the bag: (3, 3) intrinsics K in pixels and its mount in base_link."""

    intrinsics: np.ndarray
    mount_xyz_m: tuple[float, float, float]


def write_frames_to_bag(
    frames: Iterable[Any],
    out: str | Path,
    storage: str = "mcap",
    camera: BagCamera | None = None,
    topics: BridgeTopics = BridgeTopics(),
    lidar_mount_xyz_m: tuple[float, float, float] = LIDAR_MOUNT_XYZ_M,
    progress: bool = False,
    total_frames: int | None = None,
) -> SynthBagResult:
    """Write synthetic frames (fields timestamp_s, image_rgb (H, W, 3) uint8, lidar_points_ego
    (N, 4) REP 103 metres, pose_world (x, y, yaw), speed_mps, route_world (M, 2)) as a bag.

    LiDAR points are moved from base_link into the LiDAR's frame (mounted at `lidar_mount_xyz_m`,
    no rotation) as the bridge publishes them; /tf_static carries the mounts. The route is
    published once, with the first frame. With `camera`, CameraInfo messages carry its intrinsics.
    """
    from tqdm import tqdm

    build = _Messages()
    mount = np.asarray(lidar_mount_xyz_m, dtype=np.float32)
    count, first_ns, last_ns = 0, None, None
    with BagWriter(out, storage) as bag:
        bag.add_topic(topics.clock, MSG_CLOCK, QOS_RELIABLE)
        bag.add_topic(topics.tf_static, MSG_TF, QOS_LATCHED)
        bag.add_topic(topics.route, MSG_PATH, QOS_LATCHED)
        bag.add_topic(topics.camera, MSG_IMAGE, QOS_SENSOR)
        if camera is not None:
            bag.add_topic(topics.camera_info, MSG_CAMERA_INFO, QOS_SENSOR)
        bag.add_topic(topics.lidar, MSG_POINTCLOUD2, QOS_SENSOR)
        bag.add_topic(topics.speedometer, MSG_FLOAT32, QOS_SENSOR)
        bag.add_topic(topics.odometry, MSG_ODOMETRY, QOS_SENSOR)
        for frame in tqdm(frames, desc="synth-bag", unit="frame", total=total_frames, disable=not progress):
            stamp_ns = int(round((START_TIME_S + float(frame.timestamp_s)) * 1e9))
            if first_ns is None:
                first_ns = stamp_ns
                mounts = {topics.lidar_frame: tuple(float(v) for v in lidar_mount_xyz_m)}
                if camera is not None:
                    mounts[topics.camera_frame] = tuple(float(v) for v in camera.mount_xyz_m)
                bag.write_message(topics.tf_static, stamp_ns, build.tf_message(stamp_ns, topics.base_frame, mounts))
                bag.write_message(topics.route, stamp_ns, build.path(stamp_ns, "map", frame.route_world))
            bag.write_message(topics.clock, stamp_ns, build.clock(stamp_ns))
            bag.write_message(
                topics.odometry,
                stamp_ns,
                build.odometry(stamp_ns, "map", topics.base_frame, frame.pose_world, frame.speed_mps),
            )
            bag.write_message(topics.speedometer, stamp_ns, build.float32(frame.speed_mps))
            if frame.lidar_points_ego is None:
                raise ValueError("synthetic frame has no LiDAR points; the CARLA bridge layout needs the 'sim' domain")
            points = np.asarray(frame.lidar_points_ego, dtype=np.float32).copy()
            points[:, :3] -= mount
            bag.write_message(topics.lidar, stamp_ns, build.pointcloud(stamp_ns, topics.lidar_frame, points))
            image = np.asarray(frame.image_rgb)
            if camera is not None:
                bag.write_message(
                    topics.camera_info,
                    stamp_ns,
                    build.camera_info(stamp_ns, topics.camera_frame, image.shape[1], image.shape[0], camera.intrinsics),
                )
            bag.write_message(topics.camera, stamp_ns, build.image(stamp_ns, topics.camera_frame, image))
            count += 1
            last_ns = stamp_ns
        counts = dict(bag.counts)
    if count == 0:
        raise ValueError("the synthetic generator yielded no frames; expected num_frames >= 1")
    return SynthBagResult(Path(out), storage, count, counts, (last_ns - first_ns) * 1e-9)


def write_synthetic_bag(
    out: str | Path,
    storage: str = "mcap",
    num_frames: int = 100,
    seed: int = 0,
    rate_hz: float = 10.0,
    image_size: tuple[int, int] = (512, 192),
    progress: bool = False,
) -> SynthBagResult:
    """One drive of the synthetic generator ("sim" domain: flat colours + LiDAR) as a CARLA-bridge
    bag. image_size: (width, height) of the camera image; rate_hz: camera/LiDAR rate."""
    from min2real.data import synthetic

    if num_frames < 1:
        raise ValueError(f"synthetic bag num_frames={num_frames}; expected >= 1")
    if rate_hz <= 0:
        raise ValueError(f"synthetic bag rate_hz={rate_hz}; expected > 0")
    pinhole = synthetic.make_camera(tuple(image_size))
    camera = BagCamera(pinhole.intrinsics, (synthetic.CAMERA_FORWARD_M, 0.0, synthetic.CAMERA_HEIGHT_M))
    frames = synthetic.generate_drive(
        seed, num_frames, domain=synthetic.SIM, image_size=tuple(image_size), rate_hz=rate_hz
    )
    return write_frames_to_bag(frames, out, storage, camera, progress=progress, total_frames=num_frames)

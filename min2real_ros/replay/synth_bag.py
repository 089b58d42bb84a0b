"""A drive from the synthetic generator written as a rosbag2 bag in the CARLA ROS bridge layout.

Topics (role `ego_vehicle`, see docs/facts.md section 2), all stamped with the frame's
simulation time, which is also the bag timestamp:

    /clock                                   rosgraph_msgs/msg/Clock
    /carla/ego_vehicle/rgb_front/image       sensor_msgs/msg/Image (bgra8)
    /carla/ego_vehicle/rgb_front/camera_info sensor_msgs/msg/CameraInfo (when the generator has a camera model)
    /carla/ego_vehicle/lidar                 sensor_msgs/msg/PointCloud2 (x, y, z, intensity float32, sensor frame)
    /carla/ego_vehicle/speedometer           std_msgs/msg/Float32 (m/s)
    /carla/ego_vehicle/odometry              nav_msgs/msg/Odometry (frame map, child ego_vehicle)
    /carla/ego_vehicle/waypoints             nav_msgs/msg/Path (frame map, transient local, once)

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

from min2real_ros.replay.bag import QOS_LATCHED, QOS_RELIABLE, QOS_SENSOR, BagWriter, typestore
from min2real_ros.runtime.conversions import rgb_to_image_fields, xyz_to_pointcloud2_fields

MSG_IMAGE = "sensor_msgs/msg/Image"
MSG_CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
MSG_POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
MSG_FLOAT32 = "std_msgs/msg/Float32"
MSG_ODOMETRY = "nav_msgs/msg/Odometry"
MSG_PATH = "nav_msgs/msg/Path"
MSG_CLOCK = "rosgraph_msgs/msg/Clock"

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
        return self.Image(header=self.header(stamp_ns, frame_id), height=fields.height, width=fields.width,
                          encoding=fields.encoding, is_bigendian=fields.is_bigendian, step=fields.step,
                          data=np.frombuffer(fields.data, np.uint8))

    def camera_info(self, stamp_ns: int, frame_id: str, width: int, height: int, hfov_deg: float) -> Any:
        """CARLA's camera model: square pixels, principal point at the centre, no distortion."""
        focal = width / (2.0 * math.tan(math.radians(hfov_deg) / 2.0))
        k = np.array([focal, 0, width / 2.0, 0, focal, height / 2.0, 0, 0, 1], dtype=np.float64)
        p = np.array([focal, 0, width / 2.0, 0, 0, focal, height / 2.0, 0, 0, 0, 1, 0], dtype=np.float64)
        return self.CameraInfo(
            header=self.header(stamp_ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
            d=np.zeros(5), k=k, r=np.eye(3).reshape(-1), p=p, binning_x=0, binning_y=0,
            roi=self.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )

    def pointcloud(self, stamp_ns: int, frame_id: str, points_xyzi: np.ndarray) -> Any:
        points = np.asarray(points_xyzi, dtype=np.float32)
        intensity = points[:, 3] if points.shape[1] > 3 else None
        fields = xyz_to_pointcloud2_fields(points[:, :3], intensity)
        return self.PointCloud2(
            header=self.header(stamp_ns, frame_id), height=fields.height, width=fields.width,
            fields=[self.PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in fields.fields],
            is_bigendian=fields.is_bigendian, point_step=fields.point_step, row_step=fields.row_step,
            data=np.frombuffer(fields.data, np.uint8), is_dense=fields.is_dense,
        )

    def pose(self, x: float, y: float, yaw_rad: float) -> Any:
        return self.Pose(position=self.Point(x=float(x), y=float(y), z=0.0),
                         orientation=self.Quaternion(x=0.0, y=0.0, z=math.sin(yaw_rad / 2.0), w=math.cos(yaw_rad / 2.0)))

    def odometry(self, stamp_ns: int, frame_id: str, child_frame_id: str, pose_xy_yaw: np.ndarray, speed_mps: float) -> Any:
        x, y, yaw = (float(v) for v in pose_xy_yaw)
        zero = self.Vector3(x=0.0, y=0.0, z=0.0)
        return self.Odometry(
            header=self.header(stamp_ns, frame_id), child_frame_id=child_frame_id,
            pose=self.PoseWithCovariance(pose=self.pose(x, y, yaw), covariance=np.zeros(36)),
            twist=self.TwistWithCovariance(twist=self.Twist(linear=self.Vector3(x=float(speed_mps), y=0.0, z=0.0), angular=zero),
                                           covariance=np.zeros(36)),
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


def write_frames_to_bag(
    frames: Iterable[Any],
    out: str | Path,
    storage: str = "mcap",
    topics: BridgeTopics = BridgeTopics(),
    lidar_mount_xyz_m: tuple[float, float, float] = (0.0, 0.0, 0.0),
    camera_hfov_deg: float | None = None,
    progress: bool = False,
) -> SynthBagResult:
    """Write synthetic frames (fields timestamp_s, image_rgb (H, W, 3) uint8, lidar_points_ego
    (N, 4) REP 103 metres, pose_world (x, y, yaw), speed_mps, route_world (M, 2)) as a bag.

    LiDAR points are moved from base_link into the LiDAR's frame (mounted at `lidar_mount_xyz_m`,
    no rotation) as the bridge publishes them. The route is published once, with the first frame.
    `camera_hfov_deg`: the generator's horizontal field of view; a CameraInfo topic is written
    when it is given.
    """
    from tqdm import tqdm

    build = _Messages()
    role = topics.role
    camera_frame, lidar_frame = f"{role}/{topics.camera_id}", f"{role}/{topics.lidar_id}"
    mount = np.asarray(lidar_mount_xyz_m, dtype=np.float32)
    count, first_ns, last_ns = 0, None, None
    with BagWriter(out, storage) as bag:
        bag.add_topic(topics.clock, MSG_CLOCK, QOS_RELIABLE)
        bag.add_topic(topics.route, MSG_PATH, QOS_LATCHED)
        bag.add_topic(topics.camera, MSG_IMAGE, QOS_SENSOR)
        if camera_hfov_deg is not None:
            bag.add_topic(topics.camera_info, MSG_CAMERA_INFO, QOS_SENSOR)
        bag.add_topic(topics.lidar, MSG_POINTCLOUD2, QOS_SENSOR)
        bag.add_topic(topics.speedometer, MSG_FLOAT32, QOS_SENSOR)
        bag.add_topic(topics.odometry, MSG_ODOMETRY, QOS_SENSOR)
        for frame in tqdm(frames, desc="synth-bag", unit="frame", disable=not progress):
            stamp_ns = int(round((START_TIME_S + float(frame.timestamp_s)) * 1e9))
            if first_ns is None:
                first_ns = stamp_ns
                bag.write_message(topics.route, stamp_ns, build.path(stamp_ns, "map", frame.route_world))
            bag.write_message(topics.clock, stamp_ns, build.clock(stamp_ns))
            bag.write_message(topics.odometry, stamp_ns,
                              build.odometry(stamp_ns, "map", role, frame.pose_world, frame.speed_mps))
            bag.write_message(topics.speedometer, stamp_ns, build.float32(frame.speed_mps))
            points = np.asarray(frame.lidar_points_ego, dtype=np.float32).copy()
            points[:, :3] -= mount
            bag.write_message(topics.lidar, stamp_ns, build.pointcloud(stamp_ns, lidar_frame, points))
            image = np.asarray(frame.image_rgb)
            if camera_hfov_deg is not None:
                bag.write_message(topics.camera_info, stamp_ns,
                                  build.camera_info(stamp_ns, camera_frame, image.shape[1], image.shape[0], camera_hfov_deg))
            bag.write_message(topics.camera, stamp_ns, build.image(stamp_ns, camera_frame, image))
            count += 1
            last_ns = stamp_ns
        counts = dict(bag.counts)
    if count == 0:
        raise ValueError("the synthetic generator yielded no frames; expected num_frames >= 1")
    return SynthBagResult(Path(out), storage, count, counts, (last_ns - first_ns) * 1e-9)

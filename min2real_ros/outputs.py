"""The driver's output messages, built from numpy results (frames and stamps are the caller's).

Path: nav_msgs/Path in the output frame, one pose per waypoint, each heading along the trajectory
(from the previous point; the first from the ego origin), header = the camera frame's stamp.
Steering probabilities: geometry_msgs/Vector3Stamped (x straight, y left, z right), stamped like
the Path so a consumer pairs the steering class with its waypoints by stamp.
Target speed (models with the target-speed head): geometry_msgs/Vector3Stamped, x the speed to drive
in m/s (runtime.speed_head: 0 = brake), y the brake class's probability, z the most probable class's
speed in m/s; stamped like the Path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from geometry_msgs.msg import Point, PoseStamped, Vector3Stamped
from nav_msgs.msg import Path
from sensor_msgs.msg import Image
from visualization_msgs.msg import Marker, MarkerArray

from min2real.contract import TARGET_SPEEDS_MPS
from min2real.runtime.overlay import COLOR_PREDICTED, COLOR_TARGET, colour_rgba, marker_line_points
from min2real.runtime.speed_head import confidence_weighted_target_speed
from min2real_ros.conversions import ros_uint8_array


def path_message(waypoints_ego: np.ndarray, stamp: Any, frame_id: str) -> Path:
    """(T, 2) waypoints in `frame_id` -> nav_msgs/Path (headings along the trajectory)."""
    waypoints = np.asarray(waypoints_ego, dtype=np.float64).reshape(-1, 2)
    previous = np.vstack([np.zeros((1, 2)), waypoints[:-1]])
    headings = np.arctan2(waypoints[:, 1] - previous[:, 1], waypoints[:, 0] - previous[:, 0])
    half_sin, half_cos = np.sin(headings / 2), np.cos(headings / 2)
    path = Path()
    path.header.stamp, path.header.frame_id = stamp, frame_id
    for (x, y), qz, qw in zip(waypoints.tolist(), half_sin.tolist(), half_cos.tolist()):  # T poses (a handful)
        pose = PoseStamped()
        pose.header = path.header
        pose.pose.position.x, pose.pose.position.y = x, y
        pose.pose.orientation.z, pose.pose.orientation.w = qz, qw
        path.poses.append(pose)
    return path


def steer_probabilities_message(probabilities: np.ndarray, stamp: Any, frame_id: str) -> Vector3Stamped:
    """(3,) class probabilities (straight, left, right) -> Vector3Stamped x, y, z."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(3)
    msg = Vector3Stamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.vector.x, msg.vector.y, msg.vector.z = float(p[0]), float(p[1]), float(p[2])
    return msg


def target_speed_message(target_speed_probs: np.ndarray, stamp: Any, frame_id: str) -> Vector3Stamped:
    """(len(TARGET_SPEEDS_MPS),) class probabilities -> Vector3Stamped (see the module docstring)."""
    probs = np.asarray(target_speed_probs, dtype=np.float64).reshape(-1)
    msg = Vector3Stamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.vector.x = confidence_weighted_target_speed(probs)
    msg.vector.y = float(probs[0])
    msg.vector.z = float(TARGET_SPEEDS_MPS[int(probs.argmax())])
    return msg


def rgb_image_message(image_rgb: np.ndarray, stamp: Any, frame_id: str) -> Image:
    height, width = image_rgb.shape[:2]
    msg = Image()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width, msg.encoding, msg.step = height, width, "rgb8", 3 * width
    msg.data = ros_uint8_array(np.ascontiguousarray(image_rgb).tobytes())
    return msg


def markers_message(waypoints_ego: np.ndarray, target_point_ego: np.ndarray, stamp: Any, frame_id: str) -> MarkerArray:
    """LINE_STRIP from the ego origin along the waypoints + a SPHERE at the target point."""
    line = Marker()
    line.header.stamp, line.header.frame_id = stamp, frame_id
    line.ns, line.id, line.type, line.action = "min2real_waypoints", 0, Marker.LINE_STRIP, Marker.ADD
    line.scale.x = 0.15
    line.color.r, line.color.g, line.color.b, line.color.a = colour_rgba(COLOR_PREDICTED)
    line.pose.orientation.w = 1.0
    line.points = [Point(x=x, y=y, z=z) for x, y, z in marker_line_points(waypoints_ego).tolist()]
    goal = Marker()
    goal.header = line.header
    goal.ns, goal.id, goal.type, goal.action = "min2real_target_point", 1, Marker.SPHERE, Marker.ADD
    target = np.asarray(target_point_ego, dtype=np.float64).reshape(2)
    goal.pose.position.x, goal.pose.position.y = float(target[0]), float(target[1])
    goal.pose.orientation.w = 1.0
    goal.scale.x = goal.scale.y = goal.scale.z = 0.6
    goal.color.r, goal.color.g, goal.color.b, goal.color.a = colour_rgba(COLOR_TARGET)
    return MarkerArray(markers=[line, goal])

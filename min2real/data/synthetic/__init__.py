"""The synthetic two-domain driving generator (the embedded default for tests and the demo).

A drive is a procedural route: a two-lane road whose curvature varies, intersections where the
route turns left or right or goes straight across a side road, roadside objects (buildings,
trees, parked cars, poles) and an ego speed profile that slows for curves and turns and
sometimes stops before an intersection. The ego vehicle follows the right lane exactly, so the
labels are exact: future waypoints from the continuous trajectory, the target point on the
route `TARGET_POINT_DISTANCE_M` ahead, the driving command of the next intersection, and the
steering class from the contract's rule.

Two domains render the same geometry differently:
  * "sim"  flat colours like a simple simulator, plus LiDAR points cast on the same boxes/ground;
  * "real" textured asphalt and grass, muted colours, a colour cast, a lighting gradient,
           vignetting, blur and sensor noise, and no LiDAR.
Geometry and labels depend only on the seed, so `generate_drive(seed, domain="sim")` and
`generate_drive(seed, domain="real")` differ in appearance only.

Layout: `geometry` (roads, objects, ego timing), `render` (appearances, cameras, the renderer for
any pose), `drive` (labelled frames of one drive), `writers` (CARLA Garage / NAVSIM layouts on
disk). This package re-exports the public names below.

Rendering is vectorised: the ground is a top-down raster of the whole route, warped into the
camera with the flat-ground homography (cv2.warpPerspective); objects are boxes projected
with a pinhole camera and painted far to near (cv2.fillConvexPoly, a few per frame); LiDAR
rays are intersected with the ground plane and the boxes as numpy arrays.

`write_synthetic_dataset` writes the sim domain in the CARLA Garage layout (4 Hz) and the real
domain in the OpenScene/NAVSIM layout (2 Hz), so the real loaders run end to end on it.

World frame: right-handed, x east, y north, metres; yaw counter-clockwise from x. Ego frame:
REP 103 base_link (x forward, y left, z up) on the ground under the vehicle reference point.
"""

from min2real.data.synthetic.drive import (
    CARLA_RATE_HZ,
    DEFAULT_REAL_IMAGE_SIZE,
    DEFAULT_SIM_IMAGE_SIZE,
    NAVSIM_CAMERAS,
    NAVSIM_RATE_HZ,
    SyntheticDrive,
    SyntheticFrame,
    generate_drive,
)
from min2real.data.synthetic.geometry import LANE_WIDTH_M, ROAD_WIDTH_M, SyntheticRoute
from min2real.data.synthetic.render import (
    CAMERA_FORWARD_M,
    CAMERA_HEIGHT_M,
    HORIZON_FRACTION,
    REAL,
    SIM,
    PinholeCamera,
    SceneRenderer,
    make_camera,
)
from min2real.data.synthetic.writers import write_carla_route, write_navsim_log, write_pcd, write_synthetic_dataset

__all__ = [
    "CAMERA_FORWARD_M",
    "CAMERA_HEIGHT_M",
    "CARLA_RATE_HZ",
    "DEFAULT_REAL_IMAGE_SIZE",
    "DEFAULT_SIM_IMAGE_SIZE",
    "HORIZON_FRACTION",
    "LANE_WIDTH_M",
    "NAVSIM_CAMERAS",
    "NAVSIM_RATE_HZ",
    "REAL",
    "ROAD_WIDTH_M",
    "SIM",
    "PinholeCamera",
    "SceneRenderer",
    "SyntheticDrive",
    "SyntheticFrame",
    "SyntheticRoute",
    "generate_drive",
    "make_camera",
    "write_carla_route",
    "write_navsim_log",
    "write_pcd",
    "write_synthetic_dataset",
]

"""Sensors and rendering of the synthetic world: the two appearances ("sim": flat colours like a
simple simulator, with LiDAR; "real": textured asphalt and grass, muted colours, a colour cast,
a lighting gradient, vignetting, blur and sensor noise), the pinhole cameras, the top-down ground
raster, and the renderer that draws a camera image or casts LiDAR rays from any ego pose.

Rendering is vectorised: the ground is a top-down raster of the whole route, warped into the
camera with the flat-ground homography (cv2.warpPerspective); objects are boxes projected with a
pinhole camera and painted far to near (cv2.fillConvexPoly, a few per frame); LiDAR rays are
intersected with the ground plane and the boxes as numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from min2real import contract as C
from min2real.data.synthetic.appearance import REAL as REAL
from min2real.data.synthetic.appearance import SIM as SIM
from min2real.data.synthetic.appearance import Appearance, Condition, appearance_of
from min2real.data.synthetic.geometry import KINDS, ROAD_WIDTH_M, SyntheticRoute

CAMERA_FORWARD_M, CAMERA_HEIGHT_M, CAMERA_HFOV_DEG = 1.0, 1.6, 100.0
HORIZON_FRACTION = 0.42  # horizon row as a fraction of the contract crop band
LIDAR_HEIGHT_M, LIDAR_RANGE_M = 2.5, 50.0
MAP_PX_PER_M = 8.0
RENDER_DISTANCE_M = 90.0
STOP_LINE_WIDTH_M = 0.4


@dataclass(frozen=True)
class Boxes:
    """Oriented boxes to draw and to hit with LiDAR: centre_xy (K, 2) world, yaw_rad (K,),
    half_size_m (K, 2) (half length, half width), base_m / top_m (K,) heights of the bottom and
    top faces, keys: the look's colour key per box, shade (K,) a gain on that colour."""

    centre_xy: np.ndarray
    yaw_rad: np.ndarray
    half_size_m: np.ndarray
    base_m: np.ndarray
    top_m: np.ndarray
    keys: tuple[str, ...]
    shade: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    def concatenate(self, other: Boxes | None) -> Boxes:
        if other is None or not len(other):
            return self
        return Boxes(
            np.concatenate([self.centre_xy.reshape(-1, 2), other.centre_xy.reshape(-1, 2)]),
            np.concatenate([self.yaw_rad, other.yaw_rad]),
            np.concatenate([self.half_size_m.reshape(-1, 2), other.half_size_m.reshape(-1, 2)]),
            np.concatenate([self.base_m, other.base_m]),
            np.concatenate([self.top_m, other.top_m]),
            self.keys + other.keys,
            np.concatenate([self.shade, other.shade]),
        )


@dataclass(frozen=True)
class PinholeCamera:
    """A flat-ground pinhole camera on the ego vehicle (no pitch/roll; yaw offset for side cameras)."""

    width: int
    height: int
    focal_px: float
    cx: float
    cy: float
    yaw_rad: float = 0.0

    @property
    def intrinsics(self) -> np.ndarray:
        return np.array([[self.focal_px, 0.0, self.cx], [0.0, self.focal_px, self.cy], [0.0, 0.0, 1.0]])


def make_camera(
    image_size: tuple[int, int], contract: C.Contract = C.DEFAULT_CONTRACT, yaw_rad: float = 0.0
) -> PinholeCamera:
    """Camera for an image of `image_size` (width, height): the contract's centre crop of it sees
    CAMERA_HFOV_DEG horizontally with the horizon at HORIZON_FRACTION of the crop, whatever the
    source aspect, so both domains look the same to the model after the crop."""
    width, height = int(image_size[0]), int(image_size[1])
    top, _, crop_h, crop_w = C.camera_crop_box((height, width), contract)
    focal = 0.5 * crop_w / math.tan(math.radians(CAMERA_HFOV_DEG) / 2)
    return PinholeCamera(width, height, focal, 0.5 * width, top + HORIZON_FRACTION * crop_h, yaw_rad)


def side_camera_yaw(camera: PinholeCamera) -> float:
    """Yaw of CAM_L0 (and minus that of CAM_R0) so NAVSIM's side crops continue the front view."""
    keep = 1.0 - 2.0 * C.NAVSIM_STITCH_SIDE_CROP
    half = math.atan(0.5 * camera.width / camera.focal_px)
    return half + math.atan(keep * math.tan(half))


class _GroundMap:
    """A top-down RGB raster of the route's ground (roads, markings, grass) in world metres."""

    def __init__(
        self,
        route: SyntheticRoute,
        appearance: Appearance,
        rng: np.random.Generator,
        stop_lines: Sequence[np.ndarray] = (),
    ) -> None:
        import cv2

        margin = 40.0
        points = (
            np.concatenate([route.all_road_points, route.object_centre_xy])
            if len(route.object_centre_xy)
            else route.all_road_points
        )
        self.x_min, self.y_max = float(points[:, 0].min() - margin), float(points[:, 1].max() + margin)
        width = int((points[:, 0].max() + margin - self.x_min) * MAP_PX_PER_M) + 1
        height = int((self.y_max - points[:, 1].min() + margin) * MAP_PX_PER_M) + 1
        shift = 3  # sub-pixel drawing: coordinates carry 3 fractional bits

        def to_px(xy: np.ndarray) -> np.ndarray:
            cols = (xy[:, 0] - self.x_min) * MAP_PX_PER_M
            rows = (self.y_max - xy[:, 1]) * MAP_PX_PER_M
            return np.round(np.stack([cols, rows], axis=1) * (1 << shift)).astype(np.int32)

        road_mask = np.zeros((height, width), np.uint8)
        roads = [route.road_centre_xy, *route.side_roads]
        cv2.polylines(
            road_mask, [to_px(r) for r in roads], False, 255, int(ROAD_WIDTH_M * MAP_PX_PER_M), cv2.LINE_8, shift
        )
        colours = appearance.colours
        if appearance.textured:
            grass = self._texture(rng, (height, width), colours["grass"], 22.0, 14.0)
            road = self._texture(rng, (height, width), colours["road"], 8.0, 9.0)
            ground = np.where(road_mask[..., None] > 0, road, grass)
        else:
            ground = np.empty((height, width, 3), np.uint8)
            ground[:] = colours["grass"].astype(np.uint8)
            ground[road_mask > 0] = colours["road"].astype(np.uint8)

        # Markings: edge lines and a dashed centre line, interrupted inside junctions.
        centres = np.array([j.centre_xy for j in route.intersections]).reshape(-1, 2)
        edges, dashes = [], []
        for road in roads:
            dense = self._densify(road)
            yaw = np.arctan2(np.gradient(dense[:, 1]), np.gradient(dense[:, 0]))
            normal = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)
            s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
            if len(centres):
                outside = (
                    np.min(np.linalg.norm(dense[:, None] - centres[None], axis=2), axis=1) > 0.75 * ROAD_WIDTH_M + 2.0
                )
            else:
                outside = np.ones(len(dense), bool)
            for side in (-1.0, 1.0):
                edges += self._runs(dense + side * (0.5 * ROAD_WIDTH_M - 0.3) * normal, outside)
            dashes += self._runs(dense, outside & (np.mod(s, 6.0) < 3.0))
        line_px = max(1, int(round(0.15 * MAP_PX_PER_M)))
        cv2.polylines(
            ground, [to_px(r) for r in edges], False, colours["marking"].tolist(), line_px, cv2.LINE_AA, shift
        )
        cv2.polylines(
            ground, [to_px(r) for r in dashes], False, colours["centre"].tolist(), line_px, cv2.LINE_AA, shift
        )
        if len(stop_lines):  # (2, 2) world end points each, drawn STOP_LINE_WIDTH_M wide
            stop_px = max(1, int(round(STOP_LINE_WIDTH_M * MAP_PX_PER_M)))
            lines_px = [to_px(np.asarray(line)) for line in stop_lines]
            cv2.polylines(ground, lines_px, False, colours["marking"].tolist(), stop_px, cv2.LINE_AA, shift)
        self.image = ground
        self.border_colour = colours["grass"].tolist()

    @staticmethod
    def _texture(rng, shape, colour, coarse_sigma, fine_sigma) -> np.ndarray:
        import cv2

        coarse = rng.standard_normal((shape[0] // 32 + 2, shape[1] // 32 + 2), dtype=np.float32)
        coarse = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
        fine = rng.standard_normal(shape, dtype=np.float32)
        shade = coarse * coarse_sigma + fine * fine_sigma
        return np.clip(colour[None, None, :] + shade[..., None], 0, 255).astype(np.uint8)

    @staticmethod
    def _densify(polyline: np.ndarray, step: float = 0.5) -> np.ndarray:
        lengths = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(lengths)])
        samples = np.arange(0.0, s[-1] + 1e-9, step)
        return np.stack([np.interp(samples, s, polyline[:, 0]), np.interp(samples, s, polyline[:, 1])], axis=1)

    @staticmethod
    def _runs(points: np.ndarray, keep: np.ndarray) -> list[np.ndarray]:
        """Consecutive stretches of `points` where `keep` holds (at least 2 points each)."""
        edges = np.flatnonzero(np.diff(keep.astype(np.int8))) + 1
        pieces = np.split(np.arange(len(points)), edges)
        return [points[p] for p in pieces if len(p) >= 2 and keep[p[0]]]

    def homography_to(self, camera: PinholeCamera, ego_xy: np.ndarray, ego_yaw: float) -> np.ndarray:
        """3x3 map pixel (col, row) -> image pixel for the ground plane seen by `camera`."""
        world_from_map = np.array([[1 / MAP_PX_PER_M, 0, self.x_min], [0, -1 / MAP_PX_PER_M, self.y_max], [0, 0, 1]])
        c, s = math.cos(ego_yaw), math.sin(ego_yaw)
        x0, y0 = float(ego_xy[0]), float(ego_xy[1])
        ego_from_world = np.array([[c, s, -(c * x0 + s * y0)], [-s, c, s * x0 - c * y0], [0, 0, 1]])
        ca, sa = math.cos(camera.yaw_rad), math.sin(camera.yaw_rad)
        # camera-aligned ground frame: origin at the camera, x along its optical axis
        cam_ground_from_ego = np.array([[ca, sa, -ca * CAMERA_FORWARD_M], [-sa, ca, sa * CAMERA_FORWARD_M], [0, 0, 1]])
        # (x forward, y left, 1) on the ground -> camera (right, down, forward)
        camera_from_ground = np.array([[0, -1, 0], [0, 0, CAMERA_HEIGHT_M], [1, 0, 0]])
        return camera.intrinsics @ camera_from_ground @ cam_ground_from_ego @ ego_from_world @ world_from_map


class SceneRenderer:
    """Renders one route in one appearance from any ego pose: camera images (ground raster
    warped by the flat-ground homography, boxes painted far to near, the real look's camera
    effects) and LiDAR rays cast on the ground plane and the boxes. Frame-exact replays and the
    closed-loop simulator both render through this class.
    """

    def __init__(
        self,
        route: SyntheticRoute,
        domain: str,
        seed: tuple[int, ...],
        condition: Condition | None = None,
        stop_lines: Sequence[np.ndarray] = (),
    ) -> None:
        """condition: an appearance condition on top of the domain's look (None: as generated);
        stop_lines: (2, 2) world-frame end points of painted stop lines (none by default)."""
        if domain not in C.DOMAINS:
            raise ValueError(f"synthetic domain {domain!r} is not supported; expected one of {C.DOMAINS}")
        self.route = route
        self.domain = domain
        self.seed = seed
        domain_index = C.DOMAINS.index(domain)
        self.appearance = appearance_of(domain, np.random.default_rng((*seed, 2, domain_index)))
        if condition is not None:
            self.appearance = condition.apply(self.appearance)
        self.ground = _GroundMap(route, self.appearance, np.random.default_rng((*seed, 3, domain_index)), stop_lines)
        self._effect_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def render(
        self,
        camera: PinholeCamera,
        ego_xy: np.ndarray,
        ego_yaw: float,
        rng: np.random.Generator,
        dynamic: Boxes | None = None,
    ) -> np.ndarray:
        """(camera.height, camera.width, 3) uint8 RGB seen from the ego pose (world frame);
        `dynamic`: boxes of this instant (traffic, lights) drawn with the route's own."""
        boxes = static_boxes(self.route).concatenate(dynamic)
        return self._render(camera, np.asarray(ego_xy, dtype=np.float64), float(ego_yaw), rng, boxes)

    def lidar(
        self, ego_xy: np.ndarray, ego_yaw: float, rng: np.random.Generator, dynamic: Boxes | None = None
    ) -> np.ndarray:
        """(N, 4) float32 x, y, z, intensity in the ego frame (REP 103) from the ego pose."""
        from min2real.data.synthetic.lidar import cast_lidar

        boxes = static_boxes(self.route).concatenate(dynamic)
        return cast_lidar(boxes, np.asarray(ego_xy, dtype=np.float64), float(ego_yaw), rng)

    def _render(
        self, camera: PinholeCamera, ego_xy: np.ndarray, ego_yaw: float, rng: np.random.Generator, boxes: Boxes
    ) -> np.ndarray:
        import cv2

        look = self.appearance
        colours = look.colours
        homography = self.ground.homography_to(camera, ego_xy, ego_yaw)
        image = cv2.warpPerspective(
            self.ground.image,
            homography,
            (camera.width, camera.height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=self.ground.border_colour,
        )
        # Sky above the horizon; haze blends in beyond 25 m, i.e. only in a band of rows under
        # the horizon (flat ground, no pitch: a row's ground distance is f * h / (v - cy)).
        sky_rows = int(min(max(math.ceil(camera.cy + 0.5), 0), camera.height))
        band_end = int(min(camera.height, math.ceil(camera.cy + camera.focal_px * CAMERA_HEIGHT_M / 25.0) + 1))
        if band_end > sky_rows:
            below = np.arange(sky_rows, band_end, dtype=np.float32) - camera.cy
            distance = camera.focal_px * CAMERA_HEIGHT_M / np.maximum(below, 0.5)
            fog = 1.0 - np.exp(-np.maximum(distance - 25.0, 0.0) / look.fog_distance_m)
            fog = np.where(distance > RENDER_DISTANCE_M * 2, 1.0, fog)[:, None, None]
            band = image[sky_rows:band_end].astype(np.float32) * (1 - fog) + colours["haze"] * fog
            image[sky_rows:band_end] = (band + 0.5).astype(np.uint8)
        if look.textured:  # a sky gradient, brighter towards the horizon
            ramp = np.linspace(0.85, 1.05, max(sky_rows, 1), dtype=np.float32)[:sky_rows, None, None]
            image[:sky_rows] = np.clip(colours["sky"] * ramp + 0.5, 0, 255).astype(np.uint8)
        else:
            image[:sky_rows] = colours["sky"].astype(np.uint8)
        self._draw_boxes(image, camera, ego_xy, ego_yaw, boxes)
        if look.textured:
            image = self._real_camera_effects(image, camera, rng)
        return image

    def _draw_boxes(
        self, image: np.ndarray, camera: PinholeCamera, ego_xy: np.ndarray, ego_yaw: float, boxes: Boxes
    ) -> None:
        import cv2

        if not len(boxes):
            return
        centres_ego = C.world_to_ego_xy(boxes.centre_xy, ego_xy, ego_yaw)
        # Box corners in the ego frame: (K, 4, 2) footprint.
        local = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64)
        yaw_ego = boxes.yaw_rad - ego_yaw
        cos_y, sin_y = np.cos(yaw_ego)[:, None], np.sin(yaw_ego)[:, None]
        lx, ly = local[None, :, 0] * boxes.half_size_m[:, :1], local[None, :, 1] * boxes.half_size_m[:, 1:]
        foot = np.stack([cos_y * lx - sin_y * ly, sin_y * lx + cos_y * ly], axis=2) + centres_ego[:, None, :]
        # Into the camera's ground frame.
        ca, sa = math.cos(camera.yaw_rad), math.sin(camera.yaw_rad)
        rel = foot - np.array([CAMERA_FORWARD_M, 0.0])
        forward = ca * rel[..., 0] + sa * rel[..., 1]
        left = -sa * rel[..., 0] + ca * rel[..., 1]
        distance = np.linalg.norm(centres_ego, axis=1)
        visible = np.flatnonzero((forward.min(axis=1) > 0.5) & (distance < RENDER_DISTANCE_M))
        if not len(visible):
            return
        order = visible[np.argsort(-distance[visible])]  # far to near
        # Project bottom and top rings: u = f * (-left) / forward + cx, v = f * (h - z) / forward + cy.
        u = camera.focal_px * (-left[order]) / forward[order] + camera.cx
        heights = boxes.top_m[order][:, None]
        v_bottom = camera.focal_px * (CAMERA_HEIGHT_M - boxes.base_m[order][:, None]) / forward[order] + camera.cy
        v_top = camera.focal_px * (CAMERA_HEIGHT_M - heights) / forward[order] + camera.cy
        shift = 4
        scale = float(1 << shift)
        fog = 1.0 - np.exp(-np.maximum(distance[order] - 25.0, 0.0) / self.appearance.fog_distance_m)
        for i in range(len(order)):  # a few boxes per frame; each is one C call
            colour = self.appearance.colours[boxes.keys[order[i]]] * np.float32(boxes.shade[order[i]])
            colour = colour * (1 - fog[i]) + self.appearance.colours["haze"] * fog[i]
            bottom = np.stack([u[i], v_bottom[i]], axis=1)
            top = np.stack([u[i], v_top[i]], axis=1)
            ring = np.concatenate([bottom, top])
            if np.abs(ring).max() > 1e5:
                continue
            hull = cv2.convexHull(np.round(ring * scale).astype(np.int32))
            cv2.fillConvexPoly(image, hull, (colour * 0.8).tolist(), cv2.LINE_AA, shift)
            # The top face is lit: shows whether we look down on it (cars) or not (buildings).
            cv2.fillConvexPoly(
                image,
                np.round(top * scale).astype(np.int32),
                np.minimum(colour * 1.15, 255).tolist(),
                cv2.LINE_AA,
                shift,
            )
            # The side facing the camera (nearest two bottom corners) is the brightest face.
            near = np.argsort(forward[order[i]])[:2]
            face = np.concatenate([bottom[near], top[near][::-1]])
            cv2.fillConvexPoly(image, np.round(face * scale).astype(np.int32), colour.tolist(), cv2.LINE_AA, shift)

    def _real_camera_effects(self, image: np.ndarray, camera: PinholeCamera, rng: np.random.Generator) -> np.ndarray:
        """uint8 render -> uint8 camera image: colour cast, lighting gradient and vignetting,
        exposure jitter, blur and sensor noise (a random window of a per-camera noise field)."""
        import cv2

        look = self.appearance
        height, width = image.shape[:2]
        key = (width, height)
        if key not in self._effect_cache:
            xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)
            ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)
            light = (1.0 + look.light_gradient * xs)[None, :] * (1.0 - 0.28 * (xs[None, :] ** 2 + ys[:, None] ** 2))
            gain = light[..., None] * look.colour_gain
            noise_rng = np.random.default_rng((*self.seed, 5, width, height))
            noise = noise_rng.standard_normal((height + 32, width + 32, 3), dtype=np.float32) * look.noise_sigma
            self._effect_cache[key] = (gain.astype(np.float32), noise)
        gain, noise = self._effect_cache[key]
        exposure = np.float32(rng.uniform(0.93, 1.07))
        shaded = cv2.GaussianBlur(image.astype(np.float32) * (gain * exposure), (0, 0), look.blur_sigma)
        top, left = rng.integers(0, 33, size=2)
        shaded += noise[top : top + height, left : left + width]
        return np.clip(shaded + 0.5, 0, 255, out=shaded).astype(np.uint8)


def static_boxes(route: SyntheticRoute) -> Boxes:
    """The route's roadside objects (buildings, trees, parked cars, poles) as Boxes."""
    count = len(route.object_kind)
    return Boxes(
        route.object_centre_xy.reshape(-1, 2),
        np.asarray(route.object_yaw, dtype=np.float64),
        route.object_half_size.reshape(-1, 2),
        np.zeros(count),
        np.asarray(route.object_height, dtype=np.float64),
        tuple(KINDS[int(k)] for k in route.object_kind),
        np.ones(count),
    )

"""The two looks of the synthetic world ("sim": flat colours like a simple simulator; "real":
muted, jittered colours with camera effects) and the appearance conditions (daylight / weather)
applied on top of either. Lamps of traffic lights emit light: the same in every look and condition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIM, REAL = "sim", "real"

_SIM_COLOURS = {
    "grass": (72, 150, 72),
    "road": (105, 105, 110),
    "marking": (235, 235, 235),
    "centre": (235, 205, 60),
    "sky": (120, 175, 235),
    "haze": (190, 210, 230),
    "building": (190, 120, 90),
    "tree": (40, 110, 40),
    "car": (200, 40, 40),
    "pole": (230, 230, 60),
    "vehicle": (40, 90, 200),
    "pedestrian": (245, 140, 30),
    "light_pole": (55, 55, 60),
}
_REAL_COLOURS = {
    "grass": (96, 104, 72),
    "road": (72, 72, 74),
    "marking": (200, 198, 190),
    "centre": (200, 170, 90),
    "sky": (175, 185, 195),
    "haze": (170, 175, 180),
    "building": (140, 130, 122),
    "tree": (58, 72, 48),
    "car": (70, 78, 92),
    "pole": (120, 120, 115),
}
# Keys added with the traffic (drawn after the older keys' jitter, so the older look is unchanged).
_REAL_TRAFFIC_COLOURS = {"vehicle": (84, 88, 100), "pedestrian": (120, 84, 70), "light_pole": (64, 64, 66)}
# Lamps emit light: the same colour in both looks, untouched by daylight and weather.
LAMP_COLOURS = {"lamp_red": (255, 40, 30), "lamp_yellow": (255, 200, 0), "lamp_green": (40, 235, 90)}


@dataclass
class Appearance:
    colours: dict[str, np.ndarray]
    textured: bool
    colour_gain: np.ndarray  # (3,) colour cast
    light_gradient: float  # left-right brightness slope
    blur_sigma: float
    noise_sigma: float
    fog_distance_m: float


@dataclass(frozen=True)
class Condition:
    """An appearance condition (daylight / weather) applied on top of either look's palette, as
    Longest6 pairs each route with a weather and a daylight. The default changes nothing.

    brightness: overall gain; tint_rgb: per-channel gain; saturation: 1 keeps the colours, 0
    greys them; sky_rgb: replaces the sky (and the haze) colour before the gains; road_gain:
    extra gain on the road (wet asphalt is darker); fog_scale: multiplies the fog distance.
    """

    name: str = "noon"
    brightness: float = 1.0
    tint_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0
    sky_rgb: tuple[float, float, float] | None = None
    road_gain: float = 1.0
    fog_scale: float = 1.0

    def apply(self, look: Appearance) -> Appearance:
        """The look under this condition (a new Appearance; colours stay within 0..255)."""
        colours = dict(look.colours)
        if self.sky_rgb is not None:
            colours["sky"] = np.array(self.sky_rgb, dtype=np.float32)
            colours["haze"] = 0.5 * (colours["haze"] + colours["sky"])
        colours["road"] = colours["road"] * np.float32(self.road_gain)
        gain = np.float32(self.brightness) * np.asarray(self.tint_rgb, dtype=np.float32)
        for key, colour in colours.items():
            if key in LAMP_COLOURS:
                continue
            grey = np.float32(colour.mean())
            mixed = grey + np.float32(self.saturation) * (colour - grey)
            colours[key] = np.clip(mixed * gain, 0, 255).astype(np.float32)
        return Appearance(
            colours,
            look.textured,
            look.colour_gain,
            look.light_gradient,
            look.blur_sigma,
            look.noise_sigma,
            look.fog_distance_m * float(self.fog_scale),
        )


def appearance_of(domain: str, rng: np.random.Generator) -> Appearance:
    lamps = {k: np.array(v, dtype=np.float32) for k, v in LAMP_COLOURS.items()}
    if domain == SIM:
        colours = {k: np.array(v, dtype=np.float32) for k, v in _SIM_COLOURS.items()}
        return Appearance({**colours, **lamps}, False, np.ones(3, np.float32), 0.0, 0.0, 0.0, 400.0)
    jitter = {k: np.clip(np.array(v, np.float32) * rng.uniform(0.85, 1.15), 0, 255) for k, v in _REAL_COLOURS.items()}
    gain = rng.uniform(0.88, 1.12, size=3).astype(np.float32)
    look = Appearance(
        jitter,
        True,
        gain,
        float(rng.uniform(-0.25, 0.25)),
        float(rng.uniform(0.6, 1.3)),
        float(rng.uniform(2.0, 6.0)),
        float(rng.uniform(70.0, 160.0)),
    )
    for key, value in _REAL_TRAFFIC_COLOURS.items():
        jitter[key] = np.clip(np.array(value, np.float32) * rng.uniform(0.85, 1.15), 0, 255)
    jitter.update(lamps)
    return look

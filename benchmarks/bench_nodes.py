"""Message conversion cost: the driver node's callbacks against the cheapest numpy/cv2 operation.

    .venv/bin/python -m benchmarks.bench_nodes [--repeats 50]

A 1024 x 384 bgra8 sensor_msgs/Image (the CARLA bridge camera) and a 100k-point x, y, z, intensity
PointCloud2 through min2real_ros.conversions, next to the cheapest possible numpy/cv2 operation on
the same bytes (ratios printed, measured side by side). Timings are medians; the machine's load
varies, so read the ratios. The driver node's latency in its own process against bare inference
is a row of benchmarks.bench_inference (camera stamp -> Path over DDS).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from types import SimpleNamespace

import numpy as np

os.environ.setdefault("TIMM_FUSED_ATTN", "0")


def _median_ms(function, repeats: int) -> float:
    function()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def bench_conversions(repeats: int = 50) -> dict[str, float]:
    import cv2

    from min2real.contract import DEFAULT_CONTRACT, prepare_camera_rgb
    from min2real_ros.conversions import (
        image_to_rgb,
        pointcloud2_to_xyz,
        rgb_to_image_fields,
        ros_uint8_array,
        xyz_to_pointcloud2_fields,
    )

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(384, 1024, 3), dtype=np.uint8)
    fields = rgb_to_image_fields(rgb, "bgra8")
    image_msg = SimpleNamespace(**{**fields._asdict(), "data": ros_uint8_array(fields.data)})  # as rclpy delivers it
    raw = np.frombuffer(image_msg.data, np.uint8).reshape(384, 1024, 4)
    points = rng.uniform(-50, 50, size=(100_000, 3)).astype(np.float32)
    cloud_fields = xyz_to_pointcloud2_fields(points, intensity=rng.uniform(size=100_000))
    cloud_msg = SimpleNamespace(**{**cloud_fields._asdict(), "data": ros_uint8_array(cloud_fields.data)})
    cloud_raw = np.frombuffer(cloud_msg.data, np.float32)

    results = {
        "image_view_ms": _median_ms(lambda: image_to_rgb(image_msg), repeats),
        "image_view_plus_copy_ms": _median_ms(lambda: np.ascontiguousarray(image_to_rgb(image_msg)), repeats),
        "image_cvtcolor_reference_ms": _median_ms(lambda: cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB), repeats),
        "image_to_contract_input_ms": _median_ms(
            lambda: prepare_camera_rgb(image_to_rgb(image_msg), DEFAULT_CONTRACT), repeats
        ),
        "cloud_xyz_ms": _median_ms(lambda: pointcloud2_to_xyz(cloud_msg), repeats),
        "cloud_reshape_reference_ms": _median_ms(lambda: cloud_raw.reshape(-1, 4)[:, :3].copy(), repeats),
    }
    print(f"Conversion (median of {repeats})")
    print(f"  1024x384 bgra8 -> RGB view        {results['image_view_ms']:8.3f} ms")
    print(
        f"  ... + contiguous RGB copy         {results['image_view_plus_copy_ms']:8.3f} ms"
        f"   (cv2.cvtColor BGRA2RGB reference {results['image_cvtcolor_reference_ms']:.3f} ms,"
        f" ratio {results['image_view_plus_copy_ms'] / results['image_cvtcolor_reference_ms']:.2f})"
    )
    print(f"  ... -> contract camera input      {results['image_to_contract_input_ms']:8.3f} ms")
    print(
        f"  100k-point PointCloud2 -> xyz     {results['cloud_xyz_ms']:8.3f} ms"
        f"   (bare numpy reshape+copy reference {results['cloud_reshape_reference_ms']:.3f} ms,"
        f" ratio {results['cloud_xyz_ms'] / results['cloud_reshape_reference_ms']:.2f})"
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed repetitions per conversion")
    args = parser.parse_args(argv)
    bench_conversions(args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

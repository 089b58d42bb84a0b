"""Node benchmarks: message conversion cost and driver-node overhead over bare inference.

    source scripts/ros_env.sh && .venv/bin/python -m benchmarks.bench_nodes [--tiny] [--frames 20]

1. Conversion: a 1024 x 384 bgra8 sensor_msgs/Image (the CARLA bridge camera) and a 100k-point
   x, y, z, intensity PointCloud2, through min2real_ros.conversions, next to the
   cheapest possible numpy/cv2 operation on the same bytes (ratios printed, measured side by side).
2. Node overhead: a Min2Real 'sim' model (real-size contract and ViT-S/14 unless --tiny, random
   weights) exported to ONNX and run by ONNX Runtime: the same frames are timed through
   `policy.predict` directly (bare) and through the driver node over real rclpy (camera message
   published -> Path received), one frame in flight at a time. Prints both and their ratio.
Timings are medians; the machine's load varies, so read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
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


def _export(tiny: bool, directory: Path) -> Path:
    import torch

    from min2real.contract import DEFAULT_CONTRACT, TINY_CONTRACT
    from min2real.export import export_model
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config

    contract = TINY_CONTRACT if tiny else DEFAULT_CONTRACT
    torch.manual_seed(0)
    model = build_model(variant_config("min2real", tiny=tiny), contract).eval()
    path = directory / "min2real_sim.onnx"
    export_model(model, contract, "sim", path, exporter="legacy", num_random=1)
    return path


def bench_node_overhead(tiny: bool, frames: int) -> dict[str, float]:
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn

    from min2real.runtime.policy import load_policy
    from min2real.runtime.types import FrameInputs
    from min2real_ros.nodes.driver_node import DriverNode

    # The in-process graph harness the ROS tests use (publishes CARLA-bridge-style messages).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
    from ros_graph_helpers import Graph, driver_parameters, driver_remaps, wait_for

    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        model_path = _export(tiny, Path(directory))
        print(
            f"\nNode overhead ({'tiny' if tiny else 'real-size'} Min2Real sim graph, exported in "
            f"{time.perf_counter() - start:.1f} s, ONNX Runtime)"
        )
        context = rclpy.Context()
        rclpy.init(context=context)
        graph = Graph(context, "bench")
        graph.harness.image_hw = (384, 1024)
        try:
            limits = dict(
                max_image_age_s=30.0,
                max_lidar_skew_s=30.0,
                max_speed_age_s=30.0,
                max_target_age_s=30.0,
                debug_image=False,
                debug_markers=False,
            )
            driver = DriverNode(
                node_name="driver",
                namespace="/bench",
                context=context,
                cli_args=driver_remaps("bench"),
                parameter_overrides=driver_parameters("bench", model_path=str(model_path), **limits),
            )
            graph.add(driver)
            assert driver.trigger_configure() == TransitionCallbackReturn.SUCCESS, driver.configure_error
            driver.trigger_activate()
            harness = graph.harness
            harness.publish_route()
            rng = np.random.default_rng(2)
            cloud = rng.uniform([-40, -40, -2.5], [40, 40, 1.0], size=(100_000, 3)).astype(np.float32)
            lidar = harness.lidar_msg(harness.now_msg(), points=cloud)
            assert wait_for(
                lambda: harness.paths, 120.0, step=lambda: harness.publish_inputs(lidar=lidar), period_s=0.5
            ), driver.diagnostic_status().message
            camera = harness.camera_msg(harness.now_msg())  # built once: only the stamp changes per frame
            node_ms = []
            for _ in range(frames):
                count = len(harness.paths)
                lidar.header.stamp = camera.header.stamp = harness.now_msg()
                started = time.perf_counter()
                harness.publish_inputs(lidar=lidar, camera=camera)
                if not wait_for(lambda count=count: len(harness.paths) > count, 60.0, period_s=0.001):
                    raise RuntimeError(f"no Path within 60 s: {driver.diagnostic_status().message}")
                node_ms.append((time.perf_counter() - started) * 1e3)
        finally:
            graph.close()
            context.try_shutdown()
        policy = load_policy(str(model_path), domain="sim", backend="auto")
        image = rng.integers(0, 256, size=(384, 1024, 3), dtype=np.uint8)
        frame = FrameInputs(
            image_rgb=image, lidar_points_ego=cloud, speed_mps=3.0, target_point_ego=np.array([8.0, 1.0])
        )
        bare_ms = [_median_ms(lambda: policy.predict(frame), 1) for _ in range(frames)]
        policy.close()
    node, bare = statistics.median(node_ms), statistics.median(bare_ms)
    print(f"  backend {policy.backend_name}, {frames} frames, one in flight at a time")
    print(f"  bare policy.predict (preprocess + inference)  {bare:9.2f} ms")
    print(f"  driver node: Image published -> Path received {node:9.2f} ms")
    print(f"  overhead {node - bare:+.2f} ms, ratio node / bare = {node / bare:.3f}")
    return {"bare_predict_ms": bare, "node_ms": node, "ratio": node / bare}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny contract and model (fast smoke run)")
    parser.add_argument("--frames", type=int, default=15, help="frames timed through the node and bare")
    parser.add_argument("--skip-node", action="store_true", help="only the conversion benchmark")
    args = parser.parse_args(argv)
    bench_conversions()
    if not args.skip_node:
        bench_node_overhead(args.tiny, args.frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`min2real build-engine`: prebuild a TensorRT engine from an exported ONNX (build-only mode).

TensorRT 10 and 11: a `min2real quantize` fp16 / int8 graph builds strongly typed on both (its own
types decide); an FP32 graph builds fp32 on both, and fp16 / int8 with TensorRT 10's builder
flags only (TensorRT 11 refuses them with the `min2real quantize` command to run instead).

The engine lands in the cache directory with a sidecar `<engine>.json` (metadata + cache key:
ONNX hash, TensorRT version, GPU, precision, shapes). A matching cached engine is kept; a stale
one is rebuilt, or refused with --no-rebuild.
"""

from __future__ import annotations

import argparse

HELP = "build (or validate the cached) TensorRT engine for an exported ONNX model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onnx", help="exported model (.onnx) from `min2real export`")
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        default=None,
        help="engine precision (default: a quantized graph's own, fp16 for an FP32 graph); fp16 / int8 of an "
        "FP32 graph use TensorRT 10's builder flags (normalisation/softmax/reduce pinned to FP32) and are "
        "refused by TensorRT 11: build a `min2real quantize` graph there",
    )
    parser.add_argument(
        "--calib", default=None, help="TensorRT 10, int8 of an FP32 graph: dataset directory for entropy calibration"
    )
    parser.add_argument(
        "--calib-samples", type=int, default=256, help="samples used for INT8 calibration (default 256)"
    )
    parser.add_argument(
        "--calib-cache",
        default=None,
        help="INT8 calibration cache file (default <cache dir>/<stem>-<onnx hash>.int8.calib; reused when present)",
    )
    parser.add_argument(
        "--workspace", type=int, default=4096, metavar="MB", help="builder workspace in MiB (default 4096)"
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="engine cache directory (default: beside the ONNX; falls back to ~/.cache/min2real/engines)",
    )
    parser.add_argument("--out", default=None, help="explicit engine path instead of the cache directory")
    parser.add_argument("--max-batch", type=int, default=1, help="largest batch for a --dynamic-batch ONNX (default 1)")
    parser.add_argument(
        "--no-rebuild", action="store_true", help="refuse (exit 1) instead of rebuilding a stale engine"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when the cached engine matches")
    parser.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    parser.add_argument(
        "--show",
        action="store_true",
        help="print the cached engine's sidecar (metadata + cache key) and exit; needs no TensorRT",
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from min2real.runtime.engine_build import EngineBuildError, build_engine
    from min2real.runtime.engine_cache import EngineCacheError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.show:
        return _show(args)
    try:
        result = build_engine(
            args.onnx,
            args.precision,
            cache_dir=args.cache_dir,
            out=args.out,
            workspace_mb=args.workspace,
            calib_data=args.calib,
            calib_samples=args.calib_samples,
            calib_cache=args.calib_cache,
            max_batch=args.max_batch,
            allow_rebuild=not args.no_rebuild,
            force=args.force,
            device_id=args.device,
        )
    except (EngineCacheError, EngineBuildError, ImportError, FileNotFoundError, ValueError) as error:
        print(f"build-engine failed: {error}")
        return 1
    print(result.summary())
    return 0


def _show(args: argparse.Namespace) -> int:
    from pathlib import Path

    from min2real.runtime import engine_cache
    from min2real.runtime.engine_build import describe_engine

    onnx_path = Path(args.onnx)
    if args.out:
        engine_path = Path(args.out)
    else:
        # Without --precision: the engine build-engine makes by default when the ONNX is here,
        # else the first cached engine of any precision (the sidecar says which).
        precisions = engine_cache.PRECISIONS if args.precision is None else (args.precision,)
        if args.precision is None and onnx_path.is_file():
            from min2real.runtime.engine_precision import default_engine_precision
            from min2real.runtime.onnx_metadata import read_onnx_metadata

            precisions = (default_engine_precision(read_onnx_metadata(onnx_path).precision),)
        dirs = engine_cache.engine_search_dirs(onnx_path, args.cache_dir)
        found = [engine_cache.find_cached_engine(onnx_path, precision, dirs) for precision in precisions]
        engine_path = next((path for path in found if path is not None), None)
        if engine_path is None:
            print(f"no cached {'/'.join(precisions)} engine for {onnx_path} in {[str(d) for d in dirs]}")
            return 1
    try:
        print(describe_engine(engine_path))
    except engine_cache.EngineCacheError as error:
        print(error)
        return 1
    return 0

"""Engine cache rules (pure, no TensorRT): hit, version / GPU / precision / ONNX / shape changes,
refusal without rebuild, sidecar round trip and the unwritable-directory fallback."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from min2real.files import file_sha256
from min2real.runtime import engine_cache
from min2real.runtime.engine_cache import Decision, EngineCacheError, EngineCacheKey, decide

SHAPES = {
    "image": (1, 3, 96, 256),
    "lidar_bev": (1, 1, 64, 64),
    "target_point": (1, 2),
    "speed": (1, 1),
    "command": (1, 4),
}


def _key(**changes) -> EngineCacheKey:
    key = EngineCacheKey(
        onnx_sha256="a" * 64,
        tensorrt_version="10.3.0",
        gpu_name="NVIDIA Orin",
        compute_capability="8.7",
        precision="fp16",
        input_shapes=SHAPES,
    )
    return dataclasses.replace(key, **changes)


def test_hit_loads():
    assert decide(_key(), _key(), allow_rebuild=True) == Decision("load", ())
    assert decide(_key(), _key(), allow_rebuild=False).action == "load"


def test_shapes_are_order_independent():
    reordered = dict(reversed(list(SHAPES.items())))
    assert _key(input_shapes=reordered) == _key()
    assert decide(_key(input_shapes=reordered), _key(), allow_rebuild=False).action == "load"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"tensorrt_version": "10.7.0"}, "TensorRT version"),
        ({"gpu_name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}, "GPU model"),
        ({"precision": "int8"}, "precision"),
        ({"onnx_sha256": "b" * 64}, "ONNX file hash"),
        ({"input_shapes": {**SHAPES, "image": (4, 3, 96, 256)}}, "input shapes"),
    ],
)
def test_mismatch_rebuilds_or_refuses_naming_the_difference(change, named):
    cached, wanted = _key(), _key(**change)
    rebuilt = decide(cached, wanted, allow_rebuild=True)
    refused = decide(cached, wanted, allow_rebuild=False)
    assert rebuilt.action == "build"
    assert refused.action == "refuse"
    assert any(named in reason for reason in refused.reasons), refused.reasons
    # Only the changed fields are named; the cached and wanted values both appear.
    assert len(refused.reasons) == (2 if "gpu_name" in change else 1)
    assert refused.explain().startswith("refuse: ")


def test_gpu_change_names_model_and_compute_capability():
    reasons = decide(_key(), _key(gpu_name="NVIDIA A100", compute_capability="8.0"), allow_rebuild=False).reasons
    assert any("'NVIDIA Orin' -> wanted 'NVIDIA A100'" in r for r in reasons)
    assert any("'8.7' -> wanted '8.0'" in r for r in reasons)


def test_missing_engine_builds_or_refuses():
    assert decide(None, _key(), allow_rebuild=True).action == "build"
    refused = decide(None, _key(), allow_rebuild=False)
    assert refused.action == "refuse" and "no cached engine" in refused.reasons[0]


def test_invalid_precision_rejected():
    with pytest.raises(ValueError, match="precision 'bf16'"):
        _key(precision="bf16")
    with pytest.raises(ValueError, match="precision"):
        engine_cache.engine_file_name("m.onnx", "fp64")


def test_sidecar_round_trip_and_lookup(tmp_path):
    engine = tmp_path / engine_cache.engine_file_name(tmp_path / "model.onnx", "fp16")
    assert engine.name == "model.fp16.engine"
    assert engine_cache.cached_key_of(engine) is None  # no engine yet
    engine.write_bytes(b"serialized")
    assert engine_cache.cached_key_of(engine) is None  # engine without sidecar is never trusted
    engine_cache.write_sidecar(engine, '{"variant": "min2real"}', _key(), extra={"built_by": "test"})
    assert engine_cache.sidecar_path(engine).name == "model.fp16.engine.json"
    metadata_json, key = engine_cache.read_sidecar(engine)
    assert key == _key() and '"variant": "min2real"' in metadata_json
    assert engine_cache.cached_key_of(engine) == _key()
    assert engine_cache.find_cached_engine(tmp_path / "model.onnx", "fp16", [tmp_path / "nowhere", tmp_path]) == engine
    assert engine_cache.find_cached_engine(tmp_path / "model.onnx", "int8", [tmp_path]) is None


def test_corrupt_sidecar_is_an_error_not_a_hit(tmp_path):
    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"serialized")
    engine_cache.sidecar_path(engine).write_text("{not json")
    with pytest.raises(EngineCacheError, match="unreadable"):
        engine_cache.read_sidecar(engine)
    assert engine_cache.cached_key_of(engine) is None
    assert decide(engine_cache.cached_key_of(engine), _key(), allow_rebuild=False).action == "refuse"


def test_writable_dir_is_used(tmp_path):
    wanted = tmp_path / "engines" / "nested"
    assert engine_cache.resolve_cache_dir(wanted) == wanted
    assert wanted.is_dir()


def test_unwritable_dir_falls_back_to_user_cache_with_log(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    unwritable = blocker / "engines"  # cannot be created, not even by root
    with caplog.at_level(logging.WARNING, logger="min2real.engine_cache"):
        resolved = engine_cache.resolve_cache_dir(unwritable)
    assert resolved == tmp_path / "xdg" / "min2real" / "engines"
    assert resolved.is_dir()
    assert "not writable" in caplog.text and str(unwritable) in caplog.text


def test_default_user_cache_dir_without_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert engine_cache.user_cache_dir() == tmp_path / ".cache" / "min2real" / "engines"
    assert engine_cache.resolve_cache_dir(None) == tmp_path / ".cache" / "min2real" / "engines"


def test_nothing_writable_is_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "xdg"))
    with pytest.raises(EngineCacheError, match="no writable engine cache directory"):
        engine_cache.resolve_cache_dir(blocker / "engines")


def test_onnx_hash(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_engine_cache_module_does_not_import_tensorrt():
    import sys

    assert "tensorrt" not in sys.modules
    source = open(engine_cache.__file__).read()
    assert "import tensorrt" not in source


# ---- engine build helpers (training/engine.py), without TensorRT ------------------------------------
def _metadata(batch: int):
    from min2real.contract import TINY_CONTRACT, ArtifactMetadata

    return ArtifactMetadata(
        contract=TINY_CONTRACT,
        variant="min2real",
        domain="real",
        weights={},
        checkpoint_sha256="",
        package_versions={},
        input_shapes=TINY_CONTRACT.input_shapes(batch),
        output_shapes=TINY_CONTRACT.output_shapes(batch),
    )


def test_fp32_layer_selection_for_mixed_precision():
    from min2real.runtime.engine_build import select_fp32_layers

    layers = [
        ("CONVOLUTION", True),
        ("NORMALIZATION", True),
        ("MATRIX_MULTIPLY", True),
        ("SOFTMAX", True),
        ("REDUCE", True),
        ("REDUCE", False),
        ("ACTIVATION", True),
    ]
    assert select_fp32_layers(layers, "fp16") == [1, 3, 4]  # the integer (shape) reduce stays as it is
    assert select_fp32_layers(layers, "int8") == [1, 3, 4]
    assert select_fp32_layers(layers, "fp32") == []


def test_engine_input_shapes_and_calibration_inputs(tmp_path):
    import numpy as np

    from min2real.contract import ContractError
    from min2real.runtime.engine_build import (
        calibration_batches,
        calibration_cache_path,
        engine_input_shapes,
        is_dynamic,
    )

    fixed, dynamic = _metadata(1), _metadata(-1)
    assert engine_input_shapes(fixed) == fixed.input_shapes and not is_dynamic(fixed)
    assert is_dynamic(dynamic) and engine_input_shapes(dynamic, 8)["image"] == (8, 3, 96, 256)
    with pytest.raises(ContractError, match="--dynamic-batch"):
        engine_input_shapes(fixed, 4)
    sample = {
        "image": np.zeros((3, 96, 256), np.uint8),
        "lidar_bev": np.zeros((1, 64, 64), np.float32),
        "target_point": np.zeros(2, np.float32),
        "speed": np.zeros(1, np.float32),
        "command": np.eye(4, dtype=np.float32)[3],
        "waypoints": np.zeros((8, 2), np.float32),
    }
    batches = calibration_batches([sample, sample], ["image", "speed"])
    assert len(batches) == 2 and set(batches[0]) == {"image", "speed"}
    assert batches[0]["image"].shape == (1, 3, 96, 256) and batches[0]["image"].dtype == np.float32
    with pytest.raises(ContractError, match=r"lacks inputs \['command'\]"):
        calibration_batches([{"image": sample["image"]}], ["image", "command"])
    path = calibration_cache_path(tmp_path, "/models/tiny.onnx", "f" * 64)
    assert path == tmp_path / ("tiny-" + "f" * 16 + ".int8.calib")


def test_build_engine_show_prints_the_sidecar_without_tensorrt(tmp_path, capsys):
    import json

    from min2real.cli import main

    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"serialized")
    engine_cache.write_sidecar(engine, _metadata(1).to_json(), _key())
    assert main(["build-engine", str(tmp_path / "model.onnx"), "--show", "--cache-dir", str(tmp_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["cache_key"]["tensorrt_version"] == "10.3.0" and shown["metadata"]["variant"] == "min2real"
    assert (
        main(
            [
                "build-engine",
                str(tmp_path / "model.onnx"),
                "--show",
                "--precision",
                "int8",
                "--cache-dir",
                str(tmp_path),
            ]
        )
        == 1
    )

"""Runtime backends and the driving policy: backend selection by suffix, input validation,
refusal of a model whose domain or contract differs, policy.predict end to end on an exported
tiny ONNX with ONNX Runtime (and the same frame through the PyTorch checkpoint), the ONNX
Runtime path without torch, and the TensorRT path's refusals without TensorRT."""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("TIMM_FUSED_ATTN", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from min2real.contract import (  # noqa: E402
    DEFAULT_CONTRACT,
    INPUT_NAMES,
    TINY_CONTRACT,
    ArtifactMetadata,
    ContractError,
    example_inputs,
    image_to_input,
    lidar_bev_from_points,
    prepare_camera_rgb,
)
from min2real.runtime import engine_cache  # noqa: E402
from min2real.runtime.backends import backend_kind_for, load_backend  # noqa: E402
from min2real.runtime.backends.base import Backend, validate_inputs  # noqa: E402
from min2real.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from min2real.runtime.engine_cache import EngineCacheError, EngineCacheKey  # noqa: E402
from min2real.runtime.policy import DrivingPolicy, load_policy  # noqa: E402
from min2real.runtime.types import FrameInputs  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny min2real checkpoint and its exported sim graph: (checkpoint path, onnx path)."""
    import torch

    from min2real.export import export_model
    from min2real.files import file_sha256
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config
    from min2real.training.checkpoint import save_checkpoint

    directory = tmp_path_factory.mktemp("runtime")
    torch.manual_seed(0)
    model = build_model(variant_config("min2real", tiny=True), TINY_CONTRACT).eval()
    checkpoint = save_checkpoint(
        directory / "tiny.pt",
        {"model": model.state_dict(), "model_config": model.config.to_dict(), "contract": TINY_CONTRACT.to_dict()},
    )
    report = export_model(
        model,
        TINY_CONTRACT,
        "sim",
        directory / "tiny_sim.onnx",
        exporter="legacy",
        num_random=1,
        checkpoint_sha256=file_sha256(checkpoint),
    )
    return checkpoint, report.path


def _frame(seed: int = 0, lidar: bool = True, **changes) -> FrameInputs:
    rng = np.random.default_rng(seed)
    values = dict(
        image_rgb=rng.integers(0, 256, (300, 700, 3), dtype=np.uint8),  # any size: the contract crops/resizes
        lidar_points_ego=rng.uniform(-20, 20, (2000, 3)).astype(np.float32) if lidar else None,
        speed_mps=4.0,
        target_point_ego=np.array([12.0, -1.5]),
        command=1,
    )
    values.update(changes)
    return FrameInputs(**values)


# ---- selection ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "backend", "kind"),
    [
        ("m.engine", "auto", "tensorrt"),
        ("m.plan", "auto", "tensorrt"),
        ("m.onnx", "auto", "onnxruntime"),
        ("m.ONNX", "onnxruntime", "onnxruntime"),
        ("m.onnx", "tensorrt", "tensorrt"),
        ("m.onnx", "onnxruntime-cpu", "onnxruntime"),  # the driver node's documented backend names
        ("m.onnx", "onnxruntime-cuda", "onnxruntime"),
        ("m.onnx", "onnxruntime-tensorrt", "onnxruntime"),
        ("ckpt.pt", "auto", "torch"),
        ("ckpt.pth", "torch", "torch"),
        ("ckpt.ckpt", "auto", "torch"),
    ],
)
def test_backend_selection_by_suffix(name, backend, kind):
    assert backend_kind_for(name, backend) == kind


def test_backend_selection_errors():
    with pytest.raises(ValueError, match=r"suffix '\.txt'"):
        backend_kind_for("model.txt")
    with pytest.raises(ValueError, match="cannot run"):
        backend_kind_for("m.engine", "onnxruntime")
    with pytest.raises(ValueError, match="cannot run"):
        backend_kind_for("m.onnx", "torch")
    with pytest.raises(ValueError, match="backend 'openvino'"):
        backend_kind_for("m.onnx", "openvino")
    with pytest.raises(ValueError, match="cannot run"):
        backend_kind_for("m.engine", "onnxruntime-cuda")


def test_onnxruntime_provider_is_pinned_by_the_backend_name(exported):
    """The backend names of the driver node's `backend` parameter load, and asking for CUDA on a
    machine without it is an error naming the provider, never a quiet CPU session."""
    _, onnx_path = exported
    backend = load_backend(onnx_path, "onnxruntime-cpu", warmup=0)
    assert backend.name == "onnxruntime-cpu" and backend.active_providers == ["CPUExecutionProvider"]
    policy = load_policy(str(onnx_path), domain="sim", backend="onnxruntime-cpu", warmup=0)
    assert policy.backend_name == "onnxruntime-cpu"
    with pytest.raises(RuntimeError, match=r"\['CUDAExecutionProvider'\] were asked for but are not available"):
        load_backend(onnx_path, "onnxruntime-cuda", warmup=0)


def test_onnxruntime_silent_cpu_fallback_is_refused_when_cuda_was_asked_for(exported, monkeypatch, caplog):
    """onnxruntime-gpu lists CUDAExecutionProvider as available even where the CUDA libraries are
    missing; the session then quietly runs on the CPU. Simulated here with the real ONNX Runtime:
    the provider is advertised but cannot start."""
    import logging

    import onnxruntime

    _, onnx_path = exported
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    with pytest.raises(
        RuntimeError, match="could not start CUDAExecutionProvider .* fell back to CPUExecutionProvider"
    ):
        load_backend(onnx_path, "onnxruntime-cuda", warmup=0)
    with pytest.raises(RuntimeError, match="fell back to CPUExecutionProvider"):
        load_backend(onnx_path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], warmup=0)
    with caplog.at_level(logging.WARNING, logger="min2real.runtime"):
        backend = load_backend(onnx_path, warmup=0)  # auto: runs, but says so
    assert backend.name == "onnxruntime-cpu"
    assert "could not start CUDAExecutionProvider" in caplog.text


# ---- input validation --------------------------------------------------------------------------
def test_validate_inputs_names_the_bad_tensor():
    shapes = TINY_CONTRACT.input_shapes(1)
    good = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    assert validate_inputs(good, shapes) == 1
    with pytest.raises(ContractError, match=r"'image' has shape \(1, 3, 96, 255\); expected \(1, 3, 96, 256\)"):
        validate_inputs({**good, "image": np.zeros((1, 3, 96, 255), np.float32)}, shapes)
    with pytest.raises(ContractError, match="'speed' has dtype float64; expected float32"):
        validate_inputs({**good, "speed": np.zeros((1, 1))}, shapes)
    with pytest.raises(ContractError, match=r"missing \['command'\]"):
        validate_inputs({k: v for k, v in good.items() if k != "command"}, shapes)
    with pytest.raises(ContractError, match=r"unexpected \['extra'\]"):
        validate_inputs({**good, "extra": np.zeros(1, np.float32)}, shapes)
    with pytest.raises(ContractError, match="'target_point' is a list"):
        validate_inputs({**good, "target_point": [[1.0, 2.0]]}, shapes)
    dynamic = {name: (-1, *shape[1:]) for name, shape in shapes.items()}
    batch3 = {name: np.zeros((3, *shape[1:]), np.float32) for name, shape in shapes.items()}
    assert validate_inputs(batch3, dynamic) == 3
    with pytest.raises(ContractError, match="batch 2; the other inputs have batch 3"):
        validate_inputs({**batch3, "speed": np.zeros((2, 1), np.float32)}, dynamic)


def test_onnxruntime_backend_matches_torch_and_rejects_bad_inputs(exported):
    import torch

    from min2real.models.checkpoint import model_from_checkpoint

    checkpoint, onnx_path = exported
    backend = load_backend(onnx_path)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.name == "onnxruntime-cpu"
    assert backend.metadata.domain == "sim" and backend.contract == TINY_CONTRACT
    inputs = example_inputs(backend.contract, seed=4, names=backend.input_shapes)
    outputs = backend.infer(inputs)
    model = model_from_checkpoint(checkpoint)[0]
    with torch.no_grad():
        expected = model.deploy("sim")(*(torch.from_numpy(inputs[n]) for n in INPUT_NAMES))
    np.testing.assert_allclose(outputs["waypoints"], expected[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(outputs["steer_logits"], expected[1].numpy(), atol=1e-4)
    with pytest.raises(ContractError, match="'lidar_bev' has shape"):
        backend.infer({**inputs, "lidar_bev": np.zeros((1, 1, 32, 32), np.float32)})
    with pytest.raises(ContractError, match="'image' has dtype uint8"):
        backend.infer({**inputs, "image": inputs["image"].astype(np.uint8)})


# ---- refusal -------------------------------------------------------------------------------------
def test_domain_and_contract_mismatch_are_refused(exported):
    _, onnx_path = exported
    with pytest.raises(ContractError, match="exported for domain 'sim' but 'real' was requested"):
        load_policy(str(onnx_path), domain="real")
    with pytest.raises(ContractError, match="contract does not match.*camera_height: 384 != 96"):
        load_policy(str(onnx_path), domain="sim", contract=DEFAULT_CONTRACT)
    policy = load_policy(str(onnx_path), domain="sim", contract=TINY_CONTRACT)
    assert policy.metadata.domain == "sim"


def test_onnx_without_metadata_is_refused(exported, tmp_path):
    import onnx

    _, onnx_path = exported
    proto = onnx.load(str(onnx_path))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ContractError, match="carries no 'min2real.metadata'"):
        load_backend(bare)


# ---- policy -------------------------------------------------------------------------------------
def test_policy_predict_end_to_end_with_onnxruntime(exported):
    _, onnx_path = exported
    policy = load_policy(str(onnx_path), domain="sim")
    assert policy.backend_name == "onnxruntime-cpu" and policy.contract == TINY_CONTRACT
    image_buffer = policy._inputs["image"]
    frame = _frame(seed=1)
    prediction = policy.predict(frame)
    assert prediction.waypoints_ego.shape == (TINY_CONTRACT.num_waypoints, 2)
    assert prediction.waypoints_ego.dtype == np.float32 and np.isfinite(prediction.waypoints_ego).all()
    assert prediction.steer_class in (0, 1, 2)
    assert prediction.steer_probs.shape == (3,) and abs(float(prediction.steer_probs.sum()) - 1.0) < 1e-5
    assert prediction.steer_class == int(np.argmax(prediction.steer_probs))
    assert prediction.preprocess_ms >= 0 and prediction.inference_ms > 0
    assert policy._inputs["image"] is image_buffer  # buffers are reused, not reallocated

    # The policy's pre-processing is exactly the contract's.
    camera = prepare_camera_rgb(frame.image_rgb, TINY_CONTRACT)
    manual = {
        "image": image_to_input(camera)[None],
        "lidar_bev": lidar_bev_from_points(frame.lidar_points_ego, TINY_CONTRACT)[None],
        "target_point": np.array([[12.0, -1.5]], np.float32),
        "speed": np.array([[4.0]], np.float32),
        "command": np.array([[0, 1, 0, 0]], np.float32),
    }
    for name, array in manual.items():
        np.testing.assert_array_equal(policy._inputs[name], array, err_msg=name)
    direct = policy.backend.infer(manual)
    np.testing.assert_allclose(prediction.waypoints_ego, direct["waypoints"][0], atol=1e-6)

    # No LiDAR -> the all-zero BEV (real-domain convention), overwriting the previous frame's.
    policy.predict(_frame(seed=2, lidar=False, command=None))
    assert not policy._inputs["lidar_bev"].any()
    np.testing.assert_array_equal(policy._inputs["command"], [[0, 0, 0, 1]])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target_point_ego": np.array([1.0, 2.0, 3.0])}, "target point"),
        ({"target_point_ego": np.array([np.nan, 0.0])}, "target point"),
        ({"speed_mps": float("inf")}, "speed"),
        ({"command": 7}, "driving command 7"),
        ({"image_rgb": np.zeros((10, 10), np.uint8)}, "camera image has shape"),
        ({"lidar_points_ego": np.zeros((5, 2), np.float32)}, "LiDAR points have shape"),
    ],
)
def test_policy_rejects_bad_frames(exported, changes, message):
    policy = load_policy(str(exported[1]), domain="sim", warmup=0)
    with pytest.raises(ContractError, match=message):
        policy.predict(_frame(**changes))


class _NaNBackend(Backend):
    name = "nan"

    def __init__(self, metadata: ArtifactMetadata) -> None:
        self.metadata = metadata

    def _run(self, inputs, batch):
        return {
            "waypoints": np.full((batch, TINY_CONTRACT.num_waypoints, 2), np.nan, np.float32),
            "steer_logits": np.zeros((batch, 3), np.float32),
        }


def test_policy_refuses_non_finite_outputs(exported):
    metadata = load_backend(exported[1], warmup=0).metadata
    policy = DrivingPolicy(_NaNBackend(metadata))
    with pytest.raises(ContractError, match="non-finite"):
        policy.predict(_frame())


def test_torch_checkpoint_backend_agrees_with_onnxruntime(exported):
    checkpoint, onnx_path = exported
    with pytest.raises(ContractError, match="holds both the 'sim' and the 'real' graph"):
        load_policy(str(checkpoint))
    torch_policy = load_policy(str(checkpoint), domain="sim")
    assert torch_policy.backend_name == "torch-cpu" and torch_policy.metadata.variant == "min2real"
    onnx_policy = load_policy(str(onnx_path), domain="sim")
    assert torch_policy.metadata.checkpoint_sha256 == onnx_policy.metadata.checkpoint_sha256
    frame = _frame(seed=3)
    np.testing.assert_allclose(
        torch_policy.predict(frame).waypoints_ego, onnx_policy.predict(frame).waypoints_ego, atol=1e-4
    )
    with pytest.raises(ContractError, match="contract does not match"):
        load_policy(str(checkpoint), domain="real", contract=DEFAULT_CONTRACT)


def test_onnxruntime_policy_does_not_import_torch(exported):
    _, onnx_path = exported
    script = (
        "import sys, numpy as np\n"
        "from min2real.runtime.policy import load_policy\n"
        "from min2real.runtime.types import FrameInputs\n"
        f"policy = load_policy({str(onnx_path)!r}, domain='sim')\n"
        "p = policy.predict(FrameInputs(np.zeros((96, 256, 3), np.uint8), None, 1.0, np.array([5.0, 0.0]), 1))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'min2real.training' not in sys.modules, 'min2real.training was imported'\n"
        "print('OK', policy.backend_name, p.waypoints_ego.shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "OK onnxruntime-cpu (8, 2)" in result.stdout


def test_torch_checkpoint_policy_does_not_import_training(exported):
    checkpoint, _ = exported
    script = (
        "import sys, numpy as np\n"
        "from min2real.runtime.policy import load_policy\n"
        "from min2real.runtime.types import FrameInputs\n"
        f"policy = load_policy({str(checkpoint)!r}, domain='real')\n"
        "p = policy.predict(FrameInputs(np.zeros((96, 256, 3), np.uint8), None, 1.0, np.array([5.0, 0.0]), 1))\n"
        "assert not [m for m in sys.modules if m.startswith('min2real.training')], 'min2real.training was imported'\n"
        "print('OK', policy.backend_name, p.waypoints_ego.shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "OK torch-cpu (8, 2)" in result.stdout


# ---- TensorRT path without TensorRT ------------------------------------------------------------
def _fake_engine(tmp_path, metadata: ArtifactMetadata):
    engine = tmp_path / "tiny_sim.fp16.engine"
    engine.write_bytes(b"not a real engine")
    key = EngineCacheKey(
        onnx_sha256="0" * 64,
        tensorrt_version="10.3.0",
        gpu_name="NVIDIA Orin",
        compute_capability="8.7",
        precision="fp16",
        input_shapes=metadata.input_shapes,
    )
    engine_cache.write_sidecar(engine, metadata.to_json(), key)
    assert json.loads(engine_cache.sidecar_path(engine).read_text())["cache_key"]["precision"] == "fp16"
    return engine


def test_tensorrt_engine_refusals_happen_before_tensorrt_is_needed(exported, tmp_path):
    metadata = load_backend(exported[1], warmup=0).metadata
    engine = _fake_engine(tmp_path, metadata)
    with pytest.raises(ContractError, match="exported for domain 'sim' but 'real'"):
        load_backend(engine, domain="real")
    no_sidecar = tmp_path / "other.engine"
    no_sidecar.write_bytes(b"x")
    with pytest.raises(EngineCacheError, match="has no sidecar"):
        load_backend(no_sidecar)
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="TensorRT 10 or 11 Python package"):
            load_backend(engine, domain="sim")


def test_tensorrt_from_onnx_without_a_cached_engine_names_the_build_command(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _, onnx_path = exported
    with pytest.raises(
        EngineCacheError, match=r"no int8 TensorRT engine .*`min2real build-engine .*tiny_sim\.onnx --precision int8"
    ):
        load_policy(str(onnx_path), backend="tensorrt", precision="int8", cache_dir=str(tmp_path / "engines"))

"""ONNX export: every variant's sim and real graphs match PyTorch in ONNX Runtime, metadata round
trips, the graph has only standard ops, and verification fails loudly above tolerance."""

from __future__ import annotations

import os

os.environ.setdefault("TIMM_FUSED_ATTN", "0")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from min2real import data as data_lib  # noqa: E402
from min2real import export as export_lib  # noqa: E402
from min2real.contract import (  # noqa: E402
    DOMAINS,
    INPUT_NAMES,
    METADATA_KEY,
    TINY_CONTRACT,
    ArtifactMetadata,
    example_inputs,  # noqa: E402
)
from min2real.export import ExportError, export_model, verify_onnx  # noqa: E402
from min2real.models import artifact  # noqa: E402
from min2real.models.model import build_model  # noqa: E402
from min2real.models.variants import VARIANTS, variant_config  # noqa: E402
from min2real.runtime.onnx_metadata import read_onnx_metadata  # noqa: E402


def _graph_signature(variant: str, domain: str) -> tuple:
    """Variants whose deploy graphs are identical share a signature (same model config apart
    from the name and the discriminator, which is not part of the deploy graph; without an
    adapter the sim and real graphs are the same)."""
    config = variant_config(variant, tiny=True).to_dict()
    config.pop("variant")
    config.pop("use_discriminator")
    config.pop("discriminator_hidden")
    return (tuple(sorted((k, repr(v)) for k, v in config.items())), domain if config["use_adapter"] else "any")


def _unique_graphs() -> list[tuple[str, str, list[str]]]:
    groups: dict[tuple, list[str]] = {}
    for variant in VARIANTS:
        for domain in DOMAINS:
            groups.setdefault(_graph_signature(variant, domain), []).append(f"{variant}/{domain}")
    return [(names[0].split("/")[0], names[0].split("/")[1], names) for names in groups.values()]


UNIQUE_GRAPHS = _unique_graphs()


def _tiny_model(variant: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(variant_config(variant, tiny=True), TINY_CONTRACT).eval()


def test_every_variant_and_domain_is_covered():
    covered = {name for _, _, names in UNIQUE_GRAPHS for name in names}
    assert covered == {f"{v}/{d}" for v in VARIANTS for d in DOMAINS}
    assert len(UNIQUE_GRAPHS) < 2 * len(VARIANTS)  # the dedup is real, and min2real has two graphs
    assert {("min2real", "sim"), ("min2real", "real")} <= {(v, d) for v, d, _ in UNIQUE_GRAPHS}


@pytest.mark.parametrize(
    ("variant", "domain", "covers"), UNIQUE_GRAPHS, ids=[f"{g[2][0]}(+{len(g[2]) - 1})" for g in UNIQUE_GRAPHS]
)
def test_export_onnxruntime_parity(tmp_path, variant, domain, covers):
    del covers
    model = _tiny_model(variant)
    path = tmp_path / f"{variant}_{domain}.onnx"
    report = export_model(model, TINY_CONTRACT, domain, path, exporter="legacy", num_random=2)
    assert path.is_file()
    for name, error in report.max_abs_error.items():
        assert error <= export_lib.DEFAULT_TOLERANCES[name], (name, error)
    # Independent check through ONNX Runtime on fresh inputs.
    inputs = example_inputs(TINY_CONTRACT, 1, seed=123)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})
    with torch.no_grad():
        expected = model.deploy(domain)(*(torch.from_numpy(inputs[n]) for n in INPUT_NAMES))
    for onnx_out, torch_out in zip(got, expected):
        np.testing.assert_allclose(onnx_out, torch_out.numpy(), atol=1e-4)
    assert report.metadata.domain == domain and report.metadata.variant == variant
    assert "Softmax" in report.op_types or variant_config(variant).image_backbone == "resnet"
    assert not set(report.op_types) & set(export_lib.FORBIDDEN_OPS)


def test_sim_graph_applies_the_adapter_and_real_graph_does_not(tmp_path):
    model = _tiny_model("min2real")
    with torch.no_grad():  # make the adapter visibly non-identity
        for parameter in model.adapter.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    sim = export_model(model, TINY_CONTRACT, "sim", tmp_path / "sim.onnx", exporter="legacy", num_random=1)
    real = export_model(model, TINY_CONTRACT, "real", tmp_path / "real.onnx", exporter="legacy", num_random=1)
    inputs = example_inputs(TINY_CONTRACT, 1, seed=5)
    outputs = {}
    for report in (sim, real):
        session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
        outputs[report.metadata.domain] = session.run(["waypoints"], inputs)[0]
    assert not np.allclose(outputs["sim"], outputs["real"], atol=1e-6)
    sim_nodes = len(onnx.load(str(sim.path)).graph.node)
    real_nodes = len(onnx.load(str(real.path)).graph.node)
    assert sim_nodes > real_nodes  # the adapter's layers are only in the sim graph


def test_metadata_round_trip_and_onnxruntime_sees_it(tmp_path):
    model = _tiny_model("min2real")
    report = export_model(
        model, TINY_CONTRACT, "real", tmp_path / "m.onnx", exporter="legacy", num_random=1, checkpoint_sha256="c" * 64
    )
    metadata = read_onnx_metadata(report.path)
    assert metadata == report.metadata
    assert metadata.contract == TINY_CONTRACT
    assert metadata.checkpoint_sha256 == "c" * 64
    assert metadata.weights["provenance"] == {"dinov2": "none"}
    assert metadata.weights["dinov2_name"] == "vit_small_patch14_dinov2"
    assert set(metadata.package_versions) == set(artifact.PACKAGES)
    assert metadata.package_versions["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert metadata.input_shapes == TINY_CONTRACT.input_shapes(1)
    assert metadata.output_shapes == TINY_CONTRACT.output_shapes(1)
    assert metadata.extra["opset"] == 18 and metadata.extra["model_config"]["variant"] == "min2real"
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    stored = session.get_modelmeta().custom_metadata_map[METADATA_KEY]
    assert ArtifactMetadata.from_json(stored) == metadata
    proto = onnx.load(str(report.path))
    assert [entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")] == [18]
    assert [i.name for i in proto.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in proto.graph.output] == ["waypoints", "steer_logits"]


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    """A few frames per domain in the CARLA Garage + NAVSIM layouts, at the tiny contract."""
    from min2real.data.synthetic import write_synthetic_dataset

    directory = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(
        directory, frames=4, routes=1, sim_image_size=(256, 96), real_image_size=(320, 180), contract=TINY_CONTRACT
    )
    return directory


def test_dataset_samples_for_verification(synthetic_data):
    for domain, domain_index in (("sim", 0), ("real", 1)):
        samples = data_lib.load_dataset_samples(synthetic_data, TINY_CONTRACT, domain, limit=3)
        assert len(samples) == 3
        assert all(int(sample["domain"]) == domain_index for sample in samples)
        inputs = data_lib.sample_to_inputs(samples[0])
        assert {name: array.shape for name, array in inputs.items()} == TINY_CONTRACT.input_shapes(1)
        assert all(array.dtype == np.float32 for array in inputs.values())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data_lib.load_dataset_samples(synthetic_data / "missing", TINY_CONTRACT, "sim", limit=1)


def test_export_from_checkpoint_records_its_hash_and_cli_works(tmp_path, synthetic_data, capsys):
    from min2real.cli import main
    from min2real.files import file_sha256
    from min2real.training.checkpoint import save_checkpoint

    model = _tiny_model("baseline")
    checkpoint = save_checkpoint(
        tmp_path / "ckpt.pt",
        {
            "model": model.state_dict(),
            "model_config": model.config.to_dict(),
            "contract": TINY_CONTRACT.to_dict(),
            "step": 7,
        },
    )
    out = tmp_path / "baseline_real.onnx"
    command = [
        "export",
        "--checkpoint",
        str(checkpoint),
        "--domain",
        "real",
        "--out",
        str(out),
        "--exporter",
        "legacy",
        "--verify-data",
        str(synthetic_data),
        "--verify-samples",
        "2",
    ]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "waypoints: max abs error" in printed and "2 random + 2 dataset inputs" in printed
    metadata = read_onnx_metadata(out)
    assert metadata.checkpoint_sha256 == file_sha256(checkpoint)
    assert metadata.variant == "baseline" and metadata.domain == "real"
    assert metadata.extra["checkpoint_step"] == 7


def test_dynamic_batch_with_the_default_dynamo_exporter(tmp_path):
    model = _tiny_model("min2real")
    report = export_model(model, TINY_CONTRACT, "sim", tmp_path / "dyn.onnx", dynamic_batch=True, num_random=1)
    assert report.exporter == "dynamo"
    assert report.metadata.input_shapes["image"] == (-1, 3, TINY_CONTRACT.camera_height, TINY_CONTRACT.camera_width)
    assert report.metadata.extra["dynamic_batch"] is True
    assert not os.path.exists(str(report.path) + ".data")  # weights inside the one file
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    inputs = example_inputs(TINY_CONTRACT, 4, seed=9)
    waypoints = session.run(["waypoints"], inputs)[0]
    assert waypoints.shape == (4, TINY_CONTRACT.num_waypoints, 2)
    with torch.no_grad():
        expected = model.deploy("sim")(*(torch.from_numpy(inputs[n]) for n in INPUT_NAMES))[0].numpy()
    np.testing.assert_allclose(waypoints, expected, atol=1e-4)


def test_verification_fails_loudly_above_tolerance(tmp_path):
    model = _tiny_model("min2real")
    report = export_model(model, TINY_CONTRACT, "real", tmp_path / "m.onnx", exporter="legacy", num_random=1)
    perturbed = model.deploy("real")
    with torch.no_grad():
        for parameter in perturbed.model.waypoint_head.parameters():
            parameter.add_(0.5)
    with pytest.raises(ExportError, match=r"above tolerance.*waypoints: .* > 0\.001"):
        verify_onnx(perturbed, report.path, [example_inputs(TINY_CONTRACT, 1, seed=3)])
    # The unperturbed module passes the same check.
    errors = verify_onnx(model.deploy("real"), report.path, [example_inputs(TINY_CONTRACT, 1, seed=3)])
    assert max(errors.values()) < 1e-4


def test_failed_export_leaves_no_file(tmp_path, monkeypatch):
    model = _tiny_model("min2real")
    out = tmp_path / "bad.onnx"

    def always_fail(*args, **kwargs):
        raise ExportError("ONNX Runtime differs from PyTorch above tolerance (forced)")

    monkeypatch.setattr(export_lib, "verify_onnx", always_fail)
    with pytest.raises(ExportError, match="forced"):
        export_model(model, TINY_CONTRACT, "real", out, exporter="legacy")
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_graph_checks_reject_custom_ops_and_old_opsets(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("FusedAttention", ["x"], ["y"], domain="com.microsoft")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    )
    with pytest.raises(ExportError, match="custom-domain ops"):
        export_lib._check_graph(proto, 18)
    attention = helper.make_graph(
        [helper.make_node("Attention", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    with pytest.raises(ExportError, match="fused attention"):
        export_lib._check_graph(helper.make_model(attention, opset_imports=[helper.make_opsetid("", 18)]), 18)
    with pytest.raises(ExportError, match="opset 16 is too old"):
        export_model(_tiny_model("baseline"), TINY_CONTRACT, "real", tmp_path / "x.onnx", opset=16)
    with pytest.raises(Exception, match="domain 'carla'"):
        export_model(_tiny_model("baseline"), TINY_CONTRACT, "carla", tmp_path / "x.onnx")


def test_export_cli_source_camera_argument():
    from min2real.cli import build_parser
    from min2real.contract import CameraSpec

    parser = build_parser()
    base = ["export", "--checkpoint", "run.pt", "--domain", "sim", "--out", "model.onnx"]
    args = parser.parse_args([*base, "--source-camera", "1024x256@110"])
    assert args.source_camera == CameraSpec(1024, 256, 110.0)
    assert parser.parse_args(base).source_camera is None
    for bad in ("1024x256", "1024@110", "0x256@110", "1024x256@190"):
        with pytest.raises(SystemExit):
            parser.parse_args([*base, "--source-camera", bad])

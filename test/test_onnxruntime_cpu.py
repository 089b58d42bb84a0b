"""The ONNX Runtime CPU backend's load-time ViT rewrites and session options.

The rewrites (timm's attention -> com.microsoft.Attention, LayerScale folded into its Linear) run
in memory; the outcome that matters is that the rewritten session computes what the plain graph
computes (the ViT's tokens themselves, not only the heads after them), that they find every block
of both exporters' graphs and nothing else, and that the file on disk stays plain for TensorRT.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TIMM_FUSED_ATTN", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from min2real.contract import example_inputs  # noqa: E402
from min2real.files import file_sha256  # noqa: E402
from min2real.paths import data_file  # noqa: E402
from min2real.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend, session_options  # noqa: E402
from min2real.runtime.backends.onnxruntime_fusion import MS_DOMAIN, rewrite_vit  # noqa: E402

VIT_DEPTH, VIT_HEADS = 3, 3


@pytest.fixture(scope="module")
def vit_tokens_onnx(tmp_path_factory):
    """A small timm DINOv2-style ViT (3 heads of 16, random biases and LayerScale gammas) exported as
    image -> all tokens with the legacy exporter: (onnx path, torch module)."""
    import timm
    import torch

    class Tokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vit = timm.create_model(
                "vit_small_patch14_dinov2",
                pretrained=False,
                img_size=(28, 42),
                embed_dim=48,
                depth=VIT_DEPTH,
                num_heads=VIT_HEADS,
                init_values=1.0,
                num_classes=0,
            )

        def forward(self, image):
            return self.vit.forward_features(image)

    torch.manual_seed(0)
    module = Tokens().eval()
    with torch.no_grad():  # timm starts biases at 0 and LayerScale at a constant: make both matter
        for name, parameter in module.named_parameters():
            if name.endswith(".bias"):
                parameter.normal_(0.0, 0.1)
            elif name.endswith(".gamma"):
                parameter.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("vit") / "vit_tokens.onnx"
    torch.onnx.export(
        module, (torch.zeros(1, 3, 28, 42),), str(path), input_names=["image"], output_names=["tokens"], dynamo=False
    )
    return path, module


def _session(model, fused: bool):
    import onnxruntime

    options = session_options(
        onnxruntime, intra_op_threads=1, inter_op_threads=1, allow_spinning=False, graph_optimization="all"
    )
    data = model.read_bytes()
    if fused:
        data = rewrite_vit(data).model_bytes
    return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def test_rewritten_vit_computes_the_plain_graphs_tokens(vit_tokens_onnx):
    import onnx
    import torch

    path, module = vit_tokens_onnx
    result = rewrite_vit(path.read_bytes())
    assert (result.attention_blocks, result.layer_scales, result.softmax_nodes) == (VIT_DEPTH, 2 * VIT_DEPTH, VIT_DEPTH)
    rewritten = onnx.load_from_string(result.model_bytes)
    ops = [node.op_type for node in rewritten.graph.node]
    assert ops.count("Attention") == VIT_DEPTH and "Softmax" not in ops and "Split" not in ops
    exported_muls = [node.op_type for node in onnx.load(str(path)).graph.node].count("Mul")
    assert ops.count("Mul") == exported_muls - 3 * VIT_DEPTH  # q * scale, ls1 and ls2 of every block
    assert any(entry.domain == MS_DOMAIN for entry in rewritten.opset_import)

    plain, fused = _session(path, fused=False), _session(path, fused=True)
    image = np.random.default_rng(0).uniform(0, 1, (1, 3, 28, 42)).astype(np.float32)
    tokens_plain = plain.run(None, {"image": image})[0]
    tokens_fused = fused.run(None, {"image": image})[0]
    with torch.no_grad():
        tokens_torch = module(torch.from_numpy(image)).numpy()
    assert tokens_fused.shape == (1, 1 + 2 * 3, 48)
    assert tokens_plain.std(axis=1).mean() > 0.1  # tokens differ from each other: attention has work to do
    np.testing.assert_allclose(tokens_fused, tokens_plain, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(tokens_fused, tokens_torch, atol=1e-4, rtol=1e-4)


def test_a_block_whose_intermediate_is_used_elsewhere_stays_as_exported(vit_tokens_onnx, tmp_path):
    """A graph output tapping one block's attention probabilities keeps that block unfused (and
    correct); the other blocks are still fused."""
    import onnx

    path, _ = vit_tokens_onnx
    proto = onnx.load(str(path))
    softmax = next(node for node in proto.graph.node if node.op_type == "Softmax")
    proto.graph.output.append(onnx.helper.make_tensor_value_info(softmax.output[0], onnx.TensorProto.FLOAT, None))
    tapped = tmp_path / "tapped.onnx"
    onnx.save(proto, str(tapped))
    assert rewrite_vit(tapped.read_bytes()).attention_blocks == VIT_DEPTH - 1
    image = np.random.default_rng(1).uniform(0, 1, (1, 3, 28, 42)).astype(np.float32)
    plain = _session(tapped, fused=False).run(None, {"image": image})
    fused = _session(tapped, fused=True).run(None, {"image": image})
    for expected, got in zip(plain, fused):
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_bundled_dynamo_model_runs_fused_and_its_file_stays_plain():
    """The bundled model (dynamo exporter: Slice + Squeeze unbind) has its ViT blocks and the
    fusion module's cross-attention: every block is fused, the cross-attention is not, the
    outputs equal the unfused session's, and the file is untouched."""
    import onnx

    path = data_file("models", "bundled/min2real_tiny_sim.onnx")
    digest = file_sha256(path)
    fused = OnnxRuntimeBackend(path, warmup=0)
    plain = OnnxRuntimeBackend(path, warmup=0, fuse_vit=False)
    depth = fused.metadata.extra["model_config"]["dinov2_overrides"]["depth"]
    assert fused.metadata.extra["exporter"] == "dynamo"
    assert (fused.fused_attention_blocks, fused.folded_layer_scales, plain.fused_attention_blocks) == (
        depth,
        2 * depth,
        0,
    )
    for seed in range(2):
        inputs = example_inputs(fused.contract, seed=seed, names=fused.input_shapes)
        got, expected = fused.infer(inputs), plain.infer(inputs)
        for name in expected:
            # float32 kernels in another order: about 1e-6 relative (waypoints reach 10-20 m)
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=name)
    assert file_sha256(path) == digest
    on_disk = onnx.load(str(path))
    assert not [node for node in on_disk.graph.node if node.domain == MS_DOMAIN]


def test_session_options_are_applied_and_bad_values_are_refused():
    path = data_file("models", "bundled/min2real_tiny_sim.onnx")
    backend = OnnxRuntimeBackend(path, warmup=0, intra_op_threads=1)
    applied = backend.session.get_session_options()
    assert applied.intra_op_num_threads == 1
    assert applied.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spinning = OnnxRuntimeBackend(path, warmup=0, allow_spinning=True, inter_op_threads=2)
    applied = spinning.session.get_session_options()
    assert applied.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert applied.inter_op_num_threads == 2 and applied.execution_mode.name == "ORT_PARALLEL"
    bounded = OnnxRuntimeBackend(path, warmup=0, allow_spinning=True, spin_duration_us=100)
    assert bounded.session.get_session_options().get_session_config_entry("session.intra_op.spin_duration_us") == "100"
    with pytest.raises(ValueError, match="spin_duration_us=100 needs allow_spinning=True"):
        OnnxRuntimeBackend(path, warmup=0, spin_duration_us=100)
    with pytest.raises(ValueError, match=r"graph_optimization='fast'; expected one of \('disabled'"):
        OnnxRuntimeBackend(path, warmup=0, graph_optimization="fast")
    with pytest.raises(ValueError, match="inter_op_threads=0; expected an integer >= 1"):
        OnnxRuntimeBackend(path, warmup=0, inter_op_threads=0)
    with pytest.raises(ValueError, match="intra_op_threads=-1; expected an integer >= 0"):
        OnnxRuntimeBackend(path, warmup=0, intra_op_threads=-1)


def test_fusion_without_the_onnx_package_is_a_clear_error():
    """Where `onnx` is not installed the default (fused) CPU backend says what to install; the
    plain graph still loads."""
    path = data_file("models", "bundled/min2real_tiny_sim.onnx")
    code = textwrap.dedent(
        f"""
        import sys

        class NoOnnx:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "onnx":
                    raise ImportError("onnx is blocked")

        sys.meta_path.insert(0, NoOnnx())
        from min2real.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
        print("plain", OnnxRuntimeBackend({str(path)!r}, warmup=0, fuse_vit=False).fused_attention_blocks)
        try:
            OnnxRuntimeBackend({str(path)!r}, warmup=0)
        except ImportError as error:
            print("refused:", error)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "plain 0" in result.stdout
    assert "refused: the ONNX Runtime CPU backend's ViT rewrites" in result.stdout
    assert "pip install onnx" in result.stdout

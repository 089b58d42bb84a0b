"""Load-time graph rewrites for ONNX Runtime's CPU provider: timm ViT self-attention -> one
`com.microsoft.Attention` node per block, LayerScale folded into the Linear before it.

The exported ONNX stays plain (standard opset-18 ops that TensorRT and every provider read);
this rewrite runs on an in-memory copy when the CPU backend loads it, and the session then runs
ONNX Runtime's own ORT_ENABLE_ALL fusions (Gelu, MatMul + Add -> Gemm, ...) on top.

Why: neither ORT_ENABLE_ALL nor `onnxruntime.transformers.optimizer` (model_type "vit") matches
timm's attention (its qkv unbind and LayerScale differ from Hugging Face's ViT), so the exported
ViT runs as ~10 small ops per block, each a thread-pool round trip, plus two Transposes and a
Split that only move data. The contrib Attention kernel does the QKV projection (pre-packed
weights, written straight into per-head layout), QK^T, softmax and the weighted sum of V in one
node. LayerScale (`ls1`, `ls2`: a per-channel multiply after the attention projection and the
MLP) is folded into that Linear's weight and bias, one elementwise pass less per use. With
spinning off every parallel op costs a thread wake-up, so fewer ops is time saved. Measured in
docs/performance.md; parity with the plain graph is tested.

The pattern, as both torch.onnx exporters write timm's `Attention.forward` (fused_attn off):

    x -> MatMul(W_qkv) -> Add(b_qkv) -> Reshape(B, S, 3, heads, head_dim) -> Transpose(2, 0, 3, 1, 4)
      -> unbind on axis 0 (Split + Squeeze, Slice + Squeeze or Gather) -> q, k, v
    q -> Mul(scale) ; k -> Transpose(0, 1, 3, 2) ; MatMul -> Softmax(-1) -> MatMul(v)
      -> Transpose(0, 2, 1, 3) -> Reshape(B, S, heads * head_dim)
    ==> Attention(x, W_qkv, b_qkv, num_heads=heads, scale=scale)

Anything else (another attention layout, a non-constant weight, an intermediate used outside
the block) is left as exported. Needs the `onnx` package (requirements/runtime.txt); never torch.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

MS_DOMAIN = "com.microsoft"


class GraphRewriteError(RuntimeError):
    """The rewritten graph is inconsistent (a bug in the rewrite, never silently ignored)."""


def _import_onnx():
    try:
        import onnx
    except ImportError as error:
        raise ImportError(
            "the ONNX Runtime CPU backend's ViT rewrites (fuse_vit=True, the default) need the 'onnx' "
            "package: pip install onnx (requirements/runtime.txt), or load with fuse_vit=False"
        ) from error
    return onnx


@dataclass(frozen=True)
class RewriteResult:
    """model_bytes: the rewritten model (serialised ModelProto); attention_blocks: attention blocks
    fused; layer_scales: LayerScale multiplies folded; softmax_nodes: Softmax nodes in the exported
    graph (attention layers of any kind)."""

    model_bytes: bytes
    attention_blocks: int
    layer_scales: int
    softmax_nodes: int


class _Graph:
    """Producer / consumer / constant lookups over a GraphProto (read-only)."""

    def __init__(self, graph, numpy_helper) -> None:
        self.graph = graph
        self._numpy_helper = numpy_helper
        self.producer = {name: node for node in graph.node for name in node.output}
        self.consumers: dict[str, list] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.initializers = {tensor.name: tensor for tensor in graph.initializer}
        self.graph_outputs = {value.name for value in graph.output}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of `name` when it is an initializer, a Constant node or an Identity of one."""
        if name in self.initializers:
            return self._numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Identity":
            return self.constant(node.input[0])
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    return self._numpy_helper.to_array(attribute.t)
        return None

    def initializer_name(self, name: str) -> str | None:
        """`name` itself or what an Identity chain forwards, when that is an initializer."""
        while name not in self.initializers:
            node = self.producer.get(name)
            if node is None or node.op_type != "Identity":
                return None
            name = node.input[0]
        return name

    def only_consumer(self, name: str, op_type: str):
        users = self.consumers.get(name, [])
        if len(users) != 1 or users[0].op_type != op_type or name in self.graph_outputs:
            return None
        return users[0]

    def made_by(self, name: str, op_type: str):
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type else None


def _attribute(node, name: str, default=None):
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _axes(graph: _Graph, node, input_index: int = 1) -> list[int] | None:
    """Squeeze/Unsqueeze axes from the attribute (opset < 13) or the constant input."""
    if len(node.input) > input_index and node.input[input_index]:
        value = graph.constant(node.input[input_index])
        return None if value is None else [int(v) for v in np.atleast_1d(value)]
    axes = _attribute(node, "axes")
    return None if axes is None else [int(v) for v in axes]


def _unbind_index(graph: _Graph, name: str) -> tuple[int, str, list] | None:
    """When `name` is `source[i]` along axis 0 (Split + Squeeze, Slice + Squeeze or Gather),
    (i, source, nodes that do it); else None."""
    gather = graph.made_by(name, "Gather")
    if gather is not None:
        index = graph.constant(gather.input[1])
        if _attribute(gather, "axis", 0) == 0 and index is not None and index.ndim == 0:
            return int(index), gather.input[0], [gather]
        return None
    squeeze = graph.made_by(name, "Squeeze")
    if squeeze is None or _axes(graph, squeeze) != [0]:
        return None
    split = graph.made_by(squeeze.input[0], "Split")
    if split is not None:
        sizes = graph.constant(split.input[1]) if len(split.input) > 1 and split.input[1] else None
        if _attribute(split, "axis", 0) != 0 or len(split.output) != 3:
            return None
        if sizes is not None and [int(size) for size in sizes] != [1, 1, 1]:
            return None
        return list(split.output).index(squeeze.input[0]), split.input[0], [split, squeeze]
    slice_node = graph.made_by(squeeze.input[0], "Slice")
    if slice_node is None:
        return None
    starts, ends, axes, steps = (
        graph.constant(slice_node.input[i]) if len(slice_node.input) > i and slice_node.input[i] else None
        for i in range(1, 5)
    )
    if starts is None or ends is None or starts.size != 1 or ends.size != 1:
        return None
    if (axes is not None and [int(a) for a in np.ravel(axes)] != [0]) or (
        steps is not None and [int(s) for s in np.ravel(steps)] != [1]
    ):
        return None
    start, end = int(np.ravel(starts)[0]), int(np.ravel(ends)[0])
    return (start, slice_node.input[0], [slice_node, squeeze]) if end == start + 1 else None


@dataclass
class _Match:
    nodes: list  # exported nodes the fused node replaces
    x: str  # attention block input (B, S, D_in)
    weight: str  # (D_in, 3 * hidden) initializer
    bias: str  # (3 * hidden,) initializer
    output: str  # (B, S, hidden)
    heads: int
    scale: float


def _match_block(graph: _Graph, softmax) -> _Match | None:
    """The timm attention block around `softmax`, or None (see the module docstring)."""
    if _attribute(softmax, "axis", -1) not in (-1, 3):
        return None
    scores = graph.made_by(softmax.input[0], "MatMul")
    weighted = graph.only_consumer(softmax.output[0], "MatMul")
    if scores is None or weighted is None or weighted.input[0] != softmax.output[0]:
        return None
    scaled_q = graph.made_by(scores.input[0], "Mul")
    k_transposed = graph.made_by(scores.input[1], "Transpose")
    if scaled_q is None or k_transposed is None or list(_attribute(k_transposed, "perm", [])) != [0, 1, 3, 2]:
        return None
    q_name, scale = None, None
    for value_index, other_index in ((1, 0), (0, 1)):
        value = graph.constant(scaled_q.input[value_index])
        if value is not None and value.size == 1:
            q_name, scale = scaled_q.input[other_index], float(np.ravel(value)[0])
    if q_name is None or scale is None:
        return None
    heads_transposed = graph.only_consumer(weighted.output[0], "Transpose")
    if heads_transposed is None or list(_attribute(heads_transposed, "perm", [])) != [0, 2, 1, 3]:
        return None
    merged = graph.only_consumer(heads_transposed.output[0], "Reshape")
    if merged is None:
        return None

    # q, k, v are slices 0, 1, 2 of one permuted (3, B, heads, S, head_dim) tensor.
    permuted: str | None = None
    unbind_nodes: list = []
    for want, name in enumerate((q_name, k_transposed.input[0], weighted.input[1])):
        found = _unbind_index(graph, name)
        if found is None or found[0] != want or (permuted is not None and found[1] != permuted):
            return None
        permuted = found[1]
        unbind_nodes += [node for node in found[2] if all(node is not other for other in unbind_nodes)]
    permute = graph.made_by(permuted, "Transpose") if permuted is not None else None
    if permute is None or list(_attribute(permute, "perm", [])) != [2, 0, 3, 1, 4]:
        return None
    split_heads = graph.made_by(permute.input[0], "Reshape")
    shape = graph.constant(split_heads.input[1]) if split_heads is not None else None
    if shape is None or shape.shape != (5,) or int(shape[2]) != 3 or min(int(shape[3]), int(shape[4])) <= 0:
        return None
    heads, head_dim = int(shape[3]), int(shape[4])
    hidden = heads * head_dim
    merged_shape = graph.constant(merged.input[1])
    if merged_shape is None or merged_shape.shape != (3,) or int(merged_shape[2]) not in (hidden, -1):
        return None

    add = graph.made_by(split_heads.input[0], "Add")
    if add is None:
        return None
    bias = projection = None
    for bias_index, other_index in ((1, 0), (0, 1)):
        name = graph.initializer_name(add.input[bias_index])
        value = graph.constant(add.input[bias_index])
        if name is not None and value is not None and value.shape == (3 * hidden,):
            bias, projection = name, graph.made_by(add.input[other_index], "MatMul")
    if bias is None or projection is None:
        return None
    weight = graph.initializer_name(projection.input[1])
    weight_value = graph.constant(projection.input[1])
    if weight is None or weight_value is None or weight_value.ndim != 2 or weight_value.shape[1] != 3 * hidden:
        return None

    nodes = [projection, add, split_heads, permute, *unbind_nodes, scaled_q, k_transposed, scores, softmax]
    nodes += [weighted, heads_transposed, merged]
    # Every intermediate must stay inside the block (a debug output tapping q, say, keeps it unfused).
    inside = {id(node) for node in nodes}
    for node in nodes:
        for name in node.output:
            if name == merged.output[0]:
                continue
            if name in graph.graph_outputs or any(id(user) not in inside for user in graph.consumers.get(name, [])):
                return None
    return _Match(nodes, projection.input[0], weight, bias, merged.output[0], heads, scale)


def _fold_layer_scales(model, numpy_helper) -> int:
    """LayerScale after a Linear, `(x @ W + b) * gamma` with constant W, b and a per-channel gamma,
    becomes `x @ (W * gamma) + b * gamma` (in place on `model`; new initializers, since the
    exporters share identical constants between layers). Returns the number folded."""
    graph = _Graph(model.graph, numpy_helper)
    dropped = set()
    for mul in [node for node in model.graph.node if node.op_type == "Mul"]:
        gamma = add = None
        for gamma_index, x_index in ((1, 0), (0, 1)):
            gamma = graph.constant(mul.input[gamma_index])
            add = graph.made_by(mul.input[x_index], "Add")
            if gamma is not None and gamma.ndim == 1 and gamma.dtype == np.float32 and add is not None:
                break
            gamma = add = None
        if gamma is None or add is None or graph.only_consumer(add.output[0], "Mul") is not mul:
            continue
        for bias_index in (0, 1):
            bias = graph.constant(add.input[bias_index])
            matmul = graph.made_by(add.input[1 - bias_index], "MatMul")
            if bias is not None and bias.shape == gamma.shape and matmul is not None:
                break
        else:
            continue
        weight = graph.constant(matmul.input[1])
        if (
            weight is None
            or weight.dtype != np.float32
            or weight.ndim != 2
            or weight.shape[1] != gamma.shape[0]
            or graph.only_consumer(matmul.output[0], "Add") is not add
        ):
            continue
        weight_name, bias_name = f"{matmul.name}/min2real_layer_scale_weight", f"{add.name}/min2real_layer_scale_bias"
        model.graph.initializer.append(numpy_helper.from_array(weight * gamma[None, :], weight_name))
        model.graph.initializer.append(numpy_helper.from_array((bias * gamma).astype(np.float32), bias_name))
        matmul.input[1], add.input[bias_index] = weight_name, bias_name
        add.output[0] = mul.output[0]  # the Add now produces what the Mul did
        dropped.add(id(mul))
    kept = [node for node in model.graph.node if id(node) not in dropped]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return len(dropped)


def _fuse_attention(model, numpy_helper, helper) -> tuple[int, int]:
    """Replace every timm attention block by com.microsoft.Attention (in place). Returns
    (blocks fused, Softmax nodes in the graph)."""
    graph = _Graph(model.graph, numpy_helper)
    softmax_nodes = [node for node in model.graph.node if node.op_type == "Softmax"]
    matches = [match for match in (_match_block(graph, node) for node in softmax_nodes) if match is not None]
    replaced = {id(node) for match in matches for node in match.nodes}
    fused_by_output = {
        match.output: helper.make_node(
            "Attention",
            [match.x, match.weight, match.bias],
            [match.output],
            name=f"{match.output}/min2real_fused_attention",
            domain=MS_DOMAIN,
            num_heads=match.heads,
            scale=match.scale,
        )
        for match in matches
    }
    nodes = []
    for node in model.graph.node:
        if id(node) not in replaced:
            nodes.append(node)
        elif node.output and node.output[0] in fused_by_output:  # the block's last node: its place in topo order
            nodes.append(fused_by_output[node.output[0]])
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if matches and not any(entry.domain == MS_DOMAIN for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return len(matches), len(softmax_nodes)


def rewrite_vit(model_bytes: bytes) -> RewriteResult:
    """The CPU rewrites of a serialised ONNX model: LayerScale folded into the Linear before it,
    then every timm self-attention block as one com.microsoft.Attention node. Returns the new
    model bytes (the input bytes when nothing matched) and what was rewritten."""
    onnx = _import_onnx()
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(model_bytes)
    folded = _fold_layer_scales(model, numpy_helper)
    fused, softmax_nodes = _fuse_attention(model, numpy_helper, helper)
    if not folded and not fused:
        return RewriteResult(model_bytes, 0, 0, softmax_nodes)
    outputs = {value.name for value in model.graph.output}
    nodes = _without_dead_nodes(list(model.graph.node), outputs)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    # Initializers nothing reads any more (replaced weights, shapes, scales): ORT warns about each.
    read = (
        {name for node in nodes for name in _names_read(node)} | outputs | {value.name for value in model.graph.input}
    )
    kept = [tensor for tensor in model.graph.initializer if tensor.name in read]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    _check_topological(model.graph)
    return RewriteResult(model.SerializeToString(), fused, folded, softmax_nodes)


def _names_read(node) -> list[str]:
    """Inputs of `node` and of the nodes of its subgraphs (If / Loop / Scan bodies)."""
    names = list(node.input)
    for attribute in node.attribute:
        for subgraph in [attribute.g, *attribute.graphs] if attribute.HasField("g") or attribute.graphs else []:
            for inner in subgraph.node:
                names += _names_read(inner)
    return names


def _without_dead_nodes(nodes: list, graph_outputs: set[str]) -> list:
    """Drop nodes none of whose outputs is used (the replaced blocks' Constant inputs)."""
    while True:
        used = {name for node in nodes for name in node.input} | graph_outputs
        alive = [node for node in nodes if any(name in used for name in node.output)]
        if len(alive) == len(nodes):
            return alive
        nodes = alive


def _check_topological(graph) -> None:
    available = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer} | {""}
    for node in graph.node:
        missing = [name for name in node.input if name not in available]
        if missing:
            raise GraphRewriteError(f"ViT rewrite left node {node.name!r} reading {missing} before they exist")
        available.update(node.output)

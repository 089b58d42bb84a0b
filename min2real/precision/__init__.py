"""Reduced-precision graphs for TensorRT as it is today: `min2real quantize`.

TensorRT 11 builds strongly typed networks only (no FP16 / INT8 builder flags, no INT8
calibrator): reduced precision must be in the ONNX graph's own types. This package turns an
exported FP32 graph (`min2real export`) into

    fp16: a strongly typed mixed FP16/FP32 graph (rewrite.to_fp16), FP32 kept where it must be;
    int8: an explicit-quantization graph, symmetric INT8 Q/DQ on the weight-bearing Conv / MatMul /
          Gemm inputs, calibrated on dataset samples (rewrite.to_int8),

with the contract metadata saying the graph's precision (`ArtifactMetadata.precision`) and how
it was made (`extra["precision_recipe"]`), and measures each against the FP32 graph on dataset
inputs with ONNX Runtime CPU (parity.compare_graphs). Export side only: it needs ONNX Runtime's
own tools (onnxruntime.transformers.float16, onnxruntime.quantization), never torch, and the
vehicle runtime never imports it.

    options  the precisions, calibration methods, defaults and tolerances (standard library only:
             the command line reads them without importing numpy)
    rewrite  the graph rewrites: to_fp16, to_int8 (and which nodes each keeps in FP32)
    convert  quantize_onnx: the command's flow (read, rewrite, metadata, check, parity, write)
    parity   compare_graphs and its report
"""

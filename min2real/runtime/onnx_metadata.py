"""The min2real metadata an exported ONNX graph carries (contract, variant, domain, shapes).

Two readers of the one `METADATA_KEY` entry: through the `onnx` package (engine builds, tools)
and through an ONNX Runtime session (what the backends use). Neither imports torch. (The ONNX
Runtime CPU backend needs the `onnx` package anyway, for its load-time ViT rewrites, `fuse_vit`.)
"""

from __future__ import annotations

from pathlib import Path

from min2real.contract import METADATA_KEY, ArtifactMetadata, ContractError


def _missing(path: str | Path) -> ContractError:
    return ContractError(
        f"ONNX model {path} carries no {METADATA_KEY!r} metadata; export it with `min2real export` "
        "so the runtime knows its contract and domain"
    )


def read_onnx_metadata(path: str | Path) -> ArtifactMetadata:
    """ArtifactMetadata of an exported ONNX file, read with the `onnx` package."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return ArtifactMetadata.from_json(entry.value)
    raise _missing(path)


def metadata_from_onnx_session(session, path: str | Path) -> ArtifactMetadata:
    """ArtifactMetadata of the model an ONNX Runtime InferenceSession holds."""
    custom = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in custom:
        raise _missing(path)
    return ArtifactMetadata.from_json(custom[METADATA_KEY])

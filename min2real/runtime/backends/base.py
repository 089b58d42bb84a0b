"""The backend interface: `infer(inputs) -> outputs` in the contract's terms, with inputs
validated by name, shape and dtype before they reach an accelerator."""

from __future__ import annotations

import abc

import numpy as np

from min2real.contract import DYNAMIC_DIM, OUTPUT_NAMES, ArtifactMetadata, Contract, ContractError, example_inputs


class Backend(abc.ABC):
    """One loaded model. Subclasses set `name`, `metadata` and implement `_run`."""

    name: str = "backend"
    metadata: ArtifactMetadata

    @property
    def contract(self) -> Contract:
        return self.metadata.contract

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Expected input shapes; DYNAMIC_DIM (-1) marks a dynamic batch dimension."""
        return self.metadata.input_shapes

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """inputs: {name: float32 array of the metadata's shape} -> {output name: float32 array}.

        Raises ContractError naming the tensor when a name, shape or dtype is wrong.
        """
        batch = validate_inputs(inputs, self.input_shapes)
        outputs = self._run(inputs, batch)
        for name in OUTPUT_NAMES:
            if name not in outputs:
                raise ContractError(f"{self.name} backend returned no output {name!r}; got {sorted(outputs)}")
        return outputs

    @abc.abstractmethod
    def _run(self, inputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        """Run the validated inputs through the model (each backend's own engine)."""

    def close(self) -> None:  # noqa: B027  (backends without device memory have nothing to release)
        """Release sessions and device memory (idempotent)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Shared by constructors: refuse a mismatched model before any warm-up.
    def _check_requested(self, domain: str | None, contract: Contract | None) -> None:
        self.metadata.check_compatible(domain=domain, contract=contract)

    def _warm_up(self, iterations: int) -> None:
        if iterations <= 0:
            return
        inputs = example_inputs(self.contract, names=self.input_shapes)
        for _ in range(iterations):
            self.infer(inputs)


def validate_inputs(inputs: dict[str, np.ndarray], expected_shapes: dict[str, tuple[int, ...]]) -> int:
    """Check names, shapes (DYNAMIC_DIM matches any size >= 1, the same batch for all inputs) and
    dtype (float32, C-contiguous not required). Returns the batch size."""
    if not isinstance(inputs, dict):
        raise ContractError(f"model inputs must be a dict of name -> array; got {type(inputs).__name__}")
    missing = sorted(set(expected_shapes) - set(inputs))
    unexpected = sorted(set(inputs) - set(expected_shapes))
    if missing or unexpected:
        raise ContractError(
            f"model inputs do not match the graph: missing {missing}, unexpected {unexpected}; "
            f"expected exactly {sorted(expected_shapes)}"
        )
    batch = None
    for name, expected in expected_shapes.items():
        array = inputs[name]
        if not isinstance(array, np.ndarray):
            raise ContractError(f"model input {name!r} is a {type(array).__name__}; expected a numpy float32 array")
        if array.dtype != np.float32:
            raise ContractError(f"model input {name!r} has dtype {array.dtype}; expected float32")
        shape_ok = array.ndim == len(expected) and all(
            (want == DYNAMIC_DIM and got >= 1) or got == want for got, want in zip(array.shape, expected)
        )
        if not shape_ok:
            shown = tuple("B" if d == DYNAMIC_DIM else d for d in expected)
            raise ContractError(f"model input {name!r} has shape {array.shape}; expected {shown}")
        if batch is None:
            batch = array.shape[0]
        elif array.shape[0] != batch:
            raise ContractError(f"model input {name!r} has batch {array.shape[0]}; the other inputs have batch {batch}")
    return int(batch or 1)

"""Node parameters as a table: default, description, range or allowed values, read-only.

Each node module holds one `dict[str, ParameterSpec]`; `declare(node, specs)` declares them with
`rcl_interfaces/ParameterDescriptor`s carrying the description, the numeric range
(`floating_point_range` / `integer_range`, which rclpy enforces), the allowed values (in
`additional_constraints`; `refusal` enforces them) and `read_only` (rclpy refuses changes after
start). A node's set-parameters callback calls `refusal(specs, parameters)` first and then applies
what it can change while running; every refusal carries its reason back to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter. `low`/`high`: inclusive numeric range; `choices`: allowed string values;
    `read_only`: fixed after the node starts (it shapes subscriptions, publishers or the model)."""

    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False

    def constraints(self) -> str:
        parts = []
        if self.choices:
            parts.append("one of: " + ", ".join(self.choices))
        if self.low is not None or self.high is not None:
            parts.append(f"range [{_fmt(self.low)}, {_fmt(self.high)}]")
        if self.read_only:
            parts.append("read-only after start")
        return "; ".join(parts)


def _fmt(value: float | None) -> str:
    return "-inf" if value is None else f"{value:g}"


def descriptor(name: str, spec: ParameterSpec) -> Any:
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    desc = ParameterDescriptor(
        name=name,
        description=spec.description,
        additional_constraints=spec.constraints(),
        read_only=spec.read_only,
    )
    if spec.low is not None or spec.high is not None:
        low = -math.inf if spec.low is None else spec.low
        high = math.inf if spec.high is None else spec.high
        if isinstance(spec.default, bool):
            pass
        elif isinstance(spec.default, int):
            big = 2**62
            desc.integer_range = [
                IntegerRange(
                    from_value=int(max(low, -big)),
                    to_value=int(min(high, big)),
                    step=1,
                )
            ]
        elif isinstance(spec.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
    return desc


def declare(node: Any, specs: dict[str, ParameterSpec]) -> None:
    """Declare every parameter of `specs` on `node` with its descriptor; an override that breaks a
    range or is not an allowed value fails here with the parameter's name and its constraints."""
    for name, spec in specs.items():
        node.declare_parameter(name, spec.default, descriptor(name, spec))
    problem = refusal(specs, [node.get_parameter(name) for name in specs])
    if problem:
        raise ValueError(problem)


def refusal(specs: dict[str, ParameterSpec], parameters: Iterable[Any]) -> str | None:
    """Why these parameter values cannot be applied (unknown name, value not allowed, out of range,
    non-finite), or None. `parameters`: rclpy Parameter objects (name, value)."""
    for parameter in parameters:
        name, value = parameter.name, parameter.value
        spec = specs.get(name)
        if spec is None:
            continue  # use_sim_time and other standard parameters are rclpy's
        if spec.choices and value not in spec.choices:
            return f"parameter {name}={value!r} is not allowed; expected one of {spec.choices}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"parameter {name}={value} is not finite"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
                return f"parameter {name}={value} is outside [{_fmt(spec.low)}, {_fmt(spec.high)}]"
    return None


def defaults(specs: dict[str, ParameterSpec]) -> dict[str, Any]:
    return {name: spec.default for name, spec in specs.items()}

"""Benchmark agents over the ROS-free runtime: the CARLA leaderboard (Longest6) agent and the
NAVSIM agent (navhard_two_stage, EPDMS). Both use the same policy, controller and route planner
as the ROS nodes; `carla`, `leaderboard` and `navsim` are imported only when an agent class is
built, with a clear error where they are missing."""

from collections.abc import Callable


def lazy_agent_class(module_globals: dict, entry_point: str, build: Callable[[], type]) -> Callable[[str], type]:
    """A module `__getattr__` that builds the agent class `entry_point` on first access (PEP 562),
    so importing the module never needs the benchmark's packages."""

    def __getattr__(name: str) -> type:
        if name == entry_point:
            agent_class = build()
            module_globals[entry_point] = agent_class
            return agent_class
        raise AttributeError(f"module {module_globals['__name__']!r} has no attribute {name!r}")

    return __getattr__

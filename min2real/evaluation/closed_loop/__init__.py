"""Closed loop in miniature: drive the synthetic world and score it like Longest6 (ROS-free core).

    routes     named route sets (synth-longest6: 6 towns x 6 routes, six conditions)
    vehicle    kinematic bicycle with steering / pedal lag and limits
    simulator  the world rendered at the vehicle's pose each tick, collisions, the judge
    scoring    route completion, infractions, driving score (leaderboard rules)
    expert     the route-following oracle (waypoints for the same controller)
    direct     direct mode: driver and controller mirrored in this process
    run        the episode loop, results.json
    report     top-down plots, contact sheets, tables

ROS mode (the real driver_node and controller_node in their own processes, lock step) lives in
min2real_ros.sim and drives the same simulator; `min2real closed-loop` runs either.
"""

from min2real.evaluation.closed_loop.direct import DirectPolicyStack, ExpertStack, TickOutput
from min2real.evaluation.closed_loop.routes import ROUTE_SETS, RouteSpec, route_set
from min2real.evaluation.closed_loop.run import RouteRun, results_document, run_route
from min2real.evaluation.closed_loop.scoring import PENALTIES, JudgeParams, RouteJudge, RouteScore
from min2real.evaluation.closed_loop.simulator import TICK_S, ClosedLoopSimulator, Observation
from min2real.evaluation.closed_loop.vehicle import KinematicBicycle, VehicleParams, VehicleState

__all__ = [
    "PENALTIES",
    "ROUTE_SETS",
    "TICK_S",
    "ClosedLoopSimulator",
    "DirectPolicyStack",
    "ExpertStack",
    "JudgeParams",
    "KinematicBicycle",
    "Observation",
    "RouteJudge",
    "RouteRun",
    "RouteScore",
    "RouteSpec",
    "TickOutput",
    "VehicleParams",
    "VehicleState",
    "results_document",
    "route_set",
    "run_route",
]

"""The box-in-a-bin scene: a flat box on a planar joint inside a bin with two walls.

Shared by every task on this scene (the flip-up, and tasks that grasp the same box): the
scenario sections ``box:`` and ``bin:``, the Drake geometry, the per-episode box draw, and the
reset of the box on the virtual robot.

Geometry: the box rides a PlanarJoint (``box_joint``) whose frame maps its (x, y) onto world
(x, z): q = (x, z, theta); at theta = 0 it lies flat with its long side along x, at
theta = +-pi/2 it stands on its short edge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fingergym.interfaces import ObservationSpec, Region, Robot, Source, Task
from fingergym.scenario import ScenarioError, param

BOX_COLOR = [0.45, 0.55, 0.9, 1.0]
BIN_COLOR = [0.55, 0.55, 0.55, 0.6]


@dataclass
class BoxParams:
    length: float = param(0.2, 0.01, 1.0, doc="long side; lies along x when the box is flat")
    thickness: float = param(0.05, 0.005, 0.5, doc="short side; the box stands on it")
    depth: float = param(0.3, 0.01, 1.0, doc="out-of-plane size (inertia and visuals only)")
    mass: float = param(1.0, 0.0, 100.0, lo_open=True)
    corner_radius: float = param(0.002, 0.0, 0.05, lo_open=True,
                                 doc="point contact: the box touches the bin through spheres of "
                                     "this radius in its corners [m]")
    # drawn at every sim reset; [x, x] turns a term off
    x_range: list[float] = param([-0.1, 0.1], doc="initial box centre x [m]")
    flip_probability: float = param(0.5, 0.0, 1.0,
                                    doc="chance the box starts upside down (theta = pi)")
    mass_scale: list[float] = param([0.7, 1.3])
    size_scale: list[float] = param([0.9, 1.1], doc="scales length and thickness together")
    tilt_range: list[float] = param([0.0, 0.0], doc="initial lift of the box's right end "
                                                    "[rad] about its lower-left corner (0: "
                                                    "flat; for training curricula)")
    tool_start_probability: float = param(0.0, 0.0, 1.0, doc="chance the robot's tool starts "
                                          "at the box (under its lifted end, or beside its "
                                          "right end when flat) instead of at home; for "
                                          "training curricula")


@dataclass
class BinParams:
    wall_x: list[float] = param([-0.265, 0.265], doc="inner faces of the left and right walls")
    wall_thickness: float = param(0.05, 0.001, 1.0)
    wall_height: float = param(0.21, 0.01, 2.0)
    floor_z: float = param(0.0, -1.0, 1.0, doc="top face of the bin floor")
    floor_thickness: float = param(0.05, 0.001, 1.0)
    depth_margin: float = param(0.04, 0.0, 1.0, doc="out of plane: the bin is this much deeper "
                                                    "than the box [m]")
    headroom: float = param(0.1, 0.0, 2.0, doc="the robot's tool may go this high above the "
                                               "walls [m]")


SECTIONS = {"box": BoxParams, "bin": BinParams}
# Keys of scenario files and bags from before tasks were plug-ins: where they live now.
LEGACY_KEYS: dict[str, str | None] = {
    "randomization.box_x": "box.x_range",
    "randomization.flip_probability": "box.flip_probability",
    "randomization.box_mass_scale": "box.mass_scale",
    "randomization.box_size_scale": "box.size_scale",
    "observation.box_velocity": "observation.object_velocity",
}
TRACKED = {"box": "box_joint"}


def observation_spec(robot: Robot) -> ObservationSpec:
    """The box-in-bin observation: box pose, robot joint positions, box velocity, robot joint
    velocities (m, rad, m/s, rad/s), with groups ``box_q``, ``robot_q``, ``box_v``, ``robot_v``.
    For the finger this is the flip-up's original 10-element layout."""
    state = robot.state_sources()
    q = [n for n, s in state.items() if s.kind == "joint_position"]
    v = [n for n, s in state.items() if s.kind == "joint_velocity"]
    box_q = {n: Source("object_pose", "box", i)
             for i, n in enumerate(("box_x", "box_z", "box_theta"))}
    box_v = {n: Source("object_velocity", "box", i)
             for i, n in enumerate(("box_vx", "box_vz", "box_omega"))}
    sources = {**box_q, **{n: state[n] for n in q}, **box_v, **{n: state[n] for n in v}}
    return ObservationSpec(sources, {"box_q": tuple(box_q), "robot_q": tuple(q),
                                     "box_v": tuple(box_v), "robot_v": tuple(v)})


def check(scenario: Any) -> None:
    s, source = scenario, scenario.source
    for name in ("mass_scale", "size_scale"):
        if getattr(s.box, name)[0] <= 0:
            raise ScenarioError(f"{source}: box.{name}: scales must be > 0")
    lo, hi = s.bin.wall_x
    if hi - lo <= 2 * s.box.thickness:
        raise ScenarioError(f"{source}: bin.wall_x: the bin is too narrow for the box")
    tilt = s.box.tilt_range
    if tilt[0] < 0 or tilt[1] > 1.5:
        raise ScenarioError(f"{source}: box.tilt_range: must lie in [0, 1.5] rad")
    half_span = 0.5 * s.box.length * s.box.size_scale[1]
    bx = s.box.x_range
    if bx[0] - half_span < lo or bx[1] + half_span > hi:
        raise ScenarioError(f"{source}: box.x_range: {bx} lets a box of length "
                            f"{2 * half_span:.3f} start inside a wall at {s.bin.wall_x}")


def reach_region(scenario: Any) -> Region:
    b = scenario.bin
    return Region((b.wall_x[0], b.wall_x[1]), b.floor_z, b.floor_z + b.wall_height + b.headroom)


def nominal_box(scenario: Any, box_x: float | None = None,
                box_theta: float = 0.0) -> dict[str, float]:
    """The scenario's nominal box at ``box_x`` (default: the middle of its range)."""
    b = scenario.box
    centre = 0.5 * (b.x_range[0] + b.x_range[1])
    return {"box_x": centre if box_x is None else float(box_x), "box_theta": float(box_theta),
            "box_mass": b.mass, "box_length": b.length, "box_thickness": b.thickness,
            "box_tilt": 0.0}


def draw_box(scenario: Any, rng: np.random.Generator) -> dict[str, float]:
    """One randomized box (the order of draws is part of the seeding contract)."""
    b = scenario.box

    def u(lo_hi: list[float]) -> float:
        lo, hi = lo_hi
        return float(lo) if lo == hi else float(rng.uniform(lo, hi))

    size = u(b.size_scale)
    box = {"box_x": u(b.x_range),
           "box_theta": math.pi if rng.uniform() < b.flip_probability else 0.0,
           "box_mass": b.mass * u(b.mass_scale),
           "box_length": b.length * size, "box_thickness": b.thickness * size,
           "box_tilt": u(b.tilt_range)}  # an empty range draws nothing
    return {**box, **tool_start(b, rng, box["box_tilt"])}  # last: draws only in (0, 1)


def tool_start(box: Any, rng: np.random.Generator, tilt: float) -> dict[str, float]:
    """``{"box_tool_at_box": 0 or 1}`` drawn with ``box.tool_start_probability``: no draw at
    probability 0 or 1, so the draws of every existing seed stay the same. (Without the key, an
    episode of an older release, the tool is at the box exactly when the box is tilted.)"""
    p = box.tool_start_probability
    if p <= 0.0:
        return {"box_tool_at_box": 0.0} if tilt > 0.0 else {}
    return {"box_tool_at_box": 1.0 if p >= 1.0 or rng.uniform() < p else 0.0}


_CLEARANCE = 0.001  # [m] gap left between the tool, the box and the wall at a tilted start


def start_pose(scenario: Any, params: Mapping[str, float],
               tool_radius: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Box ``(x, z, theta)`` and the tool's start ``(x, z)`` [m, rad] (``None``: home).

    ``box_tilt == 0``: the box lies flat at ``box_x``. ``box_tilt > 0``: its right end is lifted
    by that angle about its lower-left corner (moved right if needed to clear the left wall).
    With ``box_tool_at_box`` the tool starts under the lifted end, holding it (or, when there is
    no room under it, against the lower-right corner; beside the right end of a flat box):
    starts near success, for training curricula.
    """
    s, phi = scenario, float(params.get("box_tilt", 0.0))
    L, T, r = params["box_length"], params["box_thickness"], tool_radius
    floor = s.bin.floor_z
    # episodes drawn before box.tool_start_probability: the tool was at the box when tilted
    at_box = params.get("box_tool_at_box", 1.0 if phi > 0.0 else 0.0) > 0.5
    if phi <= 0.0:
        flat = np.array([params["box_x"], floor + 0.5 * T, params["box_theta"]])
        if not at_box:
            return flat, None
        return flat, np.array([params["box_x"] + 0.5 * L + r + _CLEARANCE,
                               floor + r + _CLEARANCE])  # beside the right end
    c, sn = math.cos(phi), math.sin(phi)
    R = np.array([[c, -sn], [sn, c]])
    pivot = np.array([max(params["box_x"] - 0.5 * L, s.bin.wall_x[0] + T * sn + _CLEARANCE),
                      floor])
    box = pivot + R @ np.array([0.5 * L, 0.5 * T])
    if not at_box:
        return np.array([box[0], box[1], params["box_theta"] + phi]), None
    tool = pivot + R @ np.array([L - 2 * r, -(r + _CLEARANCE)])  # below the bottom face
    if tool[1] < floor + r + _CLEARANCE:
        tool = pivot + R @ np.array([L + r + _CLEARANCE, 0.0])    # beside the lower corner
        tool[1] = max(tool[1], floor + r + _CLEARANCE)
    return np.array([box[0], box[1], params["box_theta"] + phi]), tool


def add_bin(plant: Any, scenario: Any, props: Any) -> None:
    from pydrake.geometry import Box
    from pydrake.math import RigidTransform

    b = scenario.bin
    world = plant.world_body()
    span = b.wall_x[1] - b.wall_x[0] + 2 * b.wall_thickness
    depth = scenario.box.depth + b.depth_margin  # out of plane: just deeper than the box
    floor = Box(span, depth, b.floor_thickness)
    x_mid = 0.5 * (b.wall_x[0] + b.wall_x[1])
    X_floor = RigidTransform([x_mid, 0, b.floor_z - 0.5 * b.floor_thickness])
    plant.RegisterCollisionGeometry(world, X_floor, floor, "bin_floor", props)
    plant.RegisterVisualGeometry(world, X_floor, floor, "bin_floor", BIN_COLOR)
    wall = Box(b.wall_thickness, depth, b.wall_height)
    for name, x in (("bin_left", b.wall_x[0] - 0.5 * b.wall_thickness),
                    ("bin_right", b.wall_x[1] + 0.5 * b.wall_thickness)):
        X = RigidTransform([x, 0, b.floor_z + 0.5 * b.wall_height])
        plant.RegisterCollisionGeometry(world, X, wall, name, props)
        plant.RegisterVisualGeometry(world, X, wall, name, BIN_COLOR)


def add_box(plant: Any, scenario: Any, params: Mapping[str, float], props: Any,
            pose: np.ndarray | None = None) -> Any:
    """The box at ``pose`` (x, z, theta) [m, rad]; default: flat at ``box_x``."""
    from pydrake.geometry import Box, Sphere
    from pydrake.math import RigidTransform, RotationMatrix
    from pydrake.multibody.tree import FixedOffsetFrame, PlanarJoint, SpatialInertia, UnitInertia

    instance = plant.AddModelInstance("box")
    length, thickness = params["box_length"], params["box_thickness"]
    depth = scenario.box.depth
    shape = Box(length, thickness, depth)
    body = plant.AddRigidBody("box", instance, SpatialInertia(
        params["box_mass"], np.zeros(3), UnitInertia.SolidBox(length, thickness, depth)))
    plane = plant.AddFrame(FixedOffsetFrame(
        "box_plane", plant.world_frame(), RigidTransform(RotationMatrix.MakeXRotation(np.pi / 2))))
    joint = plant.AddJoint(PlanarJoint("box_joint", plane, body.body_frame()))
    if pose is None:
        pose = np.array([params["box_x"], scenario.bin.floor_z + 0.5 * thickness,
                         params["box_theta"]])
    joint.set_default_translation(pose[:2])
    joint.set_default_rotation(pose[2])
    plant.RegisterCollisionGeometry(body, RigidTransform(), shape, "box", props)
    plant.RegisterVisualGeometry(body, RigidTransform(), shape, "box", BOX_COLOR)
    if scenario.contact.model == "point":
        # Drake's point contact reports one (deepest) point per box-box pair, so a flat box on
        # a flat floor rocks corner to corner every step. Touch the bin through small spheres
        # in the box's corners instead (the robot still touches the box shape itself).
        rho = scenario.box.corner_radius
        hx, hy = 0.5 * length - rho, 0.5 * thickness - rho
        for i, (sx, sy) in enumerate(((-1, -1), (1, -1), (1, 1), (-1, 1))):
            plant.RegisterCollisionGeometry(body, RigidTransform([sx * hx, sy * hy, 0]),
                                            Sphere(rho), f"box_corner_{i}", props)
    return instance


def add_scene(plant: Any, scenario: Any, params: Mapping[str, float],
              contact: Callable[[bool], Any], pose: np.ndarray | None = None) -> None:
    """The bin (rigid) and the box (compliant) at ``pose`` (x, z, theta; default: flat at
    ``box_x``), in this order."""
    add_bin(plant, scenario, contact(False))
    add_box(plant, scenario, params, contact(True), pose)


def filter_collisions(plant: Any, scene_graph: Any, robot: Any) -> None:
    """Point contact: the box shape touches only the robot, its corner spheres only the bin."""
    from pydrake.geometry import CollisionFilterDeclaration, GeometrySet

    inspector = scene_graph.model_inspector()
    box_ids = plant.GetCollisionGeometriesForBody(plant.GetBodyByName("box"))
    shape = [g for g in box_ids if inspector.GetName(g).endswith("box")]
    corners = [g for g in box_ids if "box_corner" in inspector.GetName(g)]
    if not corners:
        return
    bin_ids = plant.GetCollisionGeometriesForBody(plant.world_body())
    robot_ids = [g for b in plant.GetBodyIndices(robot)
                 for g in plant.GetCollisionGeometriesForBody(plant.get_body(b))]
    scene_graph.collision_filter_manager().Apply(
        CollisionFilterDeclaration()
        .ExcludeBetween(GeometrySet(shape), GeometrySet(bin_ids))
        .ExcludeBetween(GeometrySet(corners), GeometrySet(robot_ids)))


def reset_box(plant: Any, plant_context: Any, scenario: Any, params: Mapping[str, float],
              rng: np.random.Generator, clear_z: float) -> str:
    """Put the box flat at a random x of its range (upside down with ``flip_probability``)
    if the robot's tool is above ``clear_z`` [m] (else ``RuntimeError``)."""
    s = scenario
    top = s.bin.floor_z + params["box_thickness"] + 0.01
    if clear_z < top:
        raise RuntimeError(f"the robot is too low (z={clear_z:.3f} m) to put the box back "
                           f"(needs z > {top:.3f}); home it first")
    x = float(rng.uniform(*s.box.x_range))
    theta = math.pi if rng.uniform() < s.box.flip_probability else 0.0
    box = plant.GetModelInstanceByName("box")
    plant.SetPositions(plant_context, box, [x, s.bin.floor_z + 0.5 * params["box_thickness"],
                                            theta])
    plant.SetVelocities(plant_context, box, np.zeros(3))
    return f"box at x={x:+.3f} m, theta={theta:.2f} rad"


class BoxInBinTask(Task):
    """A task on this scene: the ``box:`` and ``bin:`` sections, the tracked box, the
    box-in-bin observation (:func:`observation_spec`), the box draw, the bin as the robot's reach
    region. Subclasses add their sections, reward, success and ``reset_scene``."""

    sections = SECTIONS
    tracked_objects = TRACKED

    def __init__(self, scenario: Any, robot: Any):
        super().__init__(scenario, robot)
        self._spec = observation_spec(self.robot)

    def observation(self) -> ObservationSpec:
        return self._spec

    def check(self) -> None:
        check(self.scenario)

    def nominal_params(self) -> dict[str, float]:
        return nominal_box(self.scenario)

    def draw_params(self, rng: np.random.Generator) -> dict[str, float]:
        return draw_box(self.scenario, rng)

    def params_from_state(self, state: np.ndarray) -> dict[str, float]:
        lay = self._spec.layout
        return nominal_box(self.scenario, box_x=float(state[lay.index("box_x")]),
                           box_theta=float(state[lay.index("box_theta")]))

    def add_to_plant(self, plant: Any, params: Mapping[str, float],
                     contact: Callable[[bool], Any]) -> None:
        add_scene(plant, self.scenario, params, contact)

    def finalize_plant(self, plant: Any, scene_graph: Any, robot: Any) -> None:
        filter_collisions(plant, scene_graph, robot)

    def reach_region(self) -> Region:
        return reach_region(self.scenario)

"""The plug-in interfaces: a :class:`Task` and a :class:`Robot`, and the small types they share.

A scenario names one task and one robot (``task: box_flipup``, ``robot: finger``; registered
names or ``module.path:Class``). The generic machinery — the env, the sim station, the hardware
station and bridge, safety, the virtual robot, recording and replay, training, export — talks
to them only through these methods, and reads every vector by name (:class:`~fingergym.layout.
Layout`). Everything specific lives in ``tasks/<name>/`` and ``robots/<name>/``; see
``docs/extending.md`` for a walk-through.

World conventions: the motion is planar in world x (right) and z (up); metres, radians,
seconds, kilograms, newtons. A *command* is a vector of joint position targets of the robot's
forward position controller, in :attr:`Robot.command_layout` order (metres for prismatic joints,
radians for revolute ones). The agent's *action* has the same layout, scaled to ``[-1, 1]``
(:class:`~fingergym.scaling.ActionScaling`).

Who calls what:

============================  =============================================================
sim station (``sim/``)        ``task.add_to_plant``, ``robot.add_to_plant``,
                              ``task.finalize_plant``, ``robot.add_controller``,
                              ``task.observation``, ``task.reward``
hardware station/bridge       ``robot.joint_names``, ``robot.command_layout``, ``robot.limits``,
                              ``task.observation`` (joints from JointState, objects from poses)
safety                        ``robot.workspace(task.reach_region())``, ``robot.max_step``
virtual robot                 the sim's plant and controller, ``task.reset_scene``
env / eval / train            ``task.is_success``, ``task.info``, ``task.expert``, params draws
============================  =============================================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from fingergym.layout import Layout

if TYPE_CHECKING:  # pydrake types, imported lazily by implementations
    from pydrake.geometry import ProximityProperties, SceneGraph
    from pydrake.multibody.plant import MultibodyPlant
    from pydrake.multibody.tree import ModelInstanceIndex
    from pydrake.systems.framework import DiagramBuilder, InputPort

    from fingergym.scenario import Scenario

SourceKind = Literal["joint_position", "joint_velocity", "object_pose", "object_velocity"]
POSITION_KINDS = ("joint_position", "object_pose")


@dataclass(frozen=True)
class Source:
    """Where one observation element comes from, in sim and on hardware alike.

    - ``joint_position`` / ``joint_velocity`` of joint ``name`` [m or rad, m/s or rad/s]: the
      plant's joint in sim; the ``sensor_msgs/JointState`` entry of that name on hardware.
    - ``object_pose`` / ``object_velocity`` of tracked object ``name``, planar ``axis`` 0 = x,
      1 = z [m, m/s], 2 = theta [rad, rad/s] about world -y: the object's planar joint in sim
      (:attr:`Task.tracked_objects`); its ``geometry_msgs/PoseStamped`` topic on hardware, the
      velocity estimated from the poses (:mod:`fingergym.observation`).
    """

    kind: SourceKind
    name: str
    axis: int = 0

    @property
    def is_position(self) -> bool:
        return self.kind in POSITION_KINDS

    @property
    def bound(self) -> float:
        """A generous finite bound of the element for the observation space (theta is not
        wrapped, so angles get many turns): positions 2 m, angles 1000 rad, velocities 100 m/s,
        angular velocities 1000 rad/s."""
        angular = self.kind.startswith("object") and self.axis == 2
        if self.is_position:
            return 1000.0 if angular else 2.0
        return 1000.0 if angular else 100.0


@dataclass(frozen=True)
class ObservationSpec:
    """A task's observation: ordered ``name -> Source`` and named groups (see :class:`Layout`)."""

    sources: Mapping[str, Source]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def layout(self) -> Layout:
        return Layout(tuple(self.sources), self.groups)

    @property
    def bound(self) -> np.ndarray:
        """(n,) symmetric bounds of the observation space."""
        return np.array([s.bound for s in self.sources.values()])

    def object_poses(self, state: np.ndarray) -> dict[str, list[float]]:
        """The planar pose ``[x, z, theta]`` [m, rad] of each tracked object in ``state`` (n,)
        (an object the observation reads only partly gets 0 for the missing axes)."""
        poses: dict[str, list[float]] = {}
        for i, s in enumerate(self.sources.values()):
            if s.kind == "object_pose":
                poses.setdefault(s.name, [0.0, 0.0, 0.0])[s.axis] = float(state[i])
        return poses

    @property
    def objects(self) -> tuple[str, ...]:
        """Tracked objects the observation reads, in first-use order."""
        seen: dict[str, None] = {}
        for s in self.sources.values():
            if s.kind.startswith("object"):
                seen.setdefault(s.name, None)
        return tuple(seen)

    @property
    def joints(self) -> tuple[str, ...]:
        """Robot joints the observation reads, in first-use order."""
        seen: dict[str, None] = {}
        for s in self.sources.values():
            if s.kind.startswith("joint"):
                seen.setdefault(s.name, None)
        return tuple(seen)


@dataclass(frozen=True)
class Region:
    """Where a task lets the robot's tool go (world frame, metres): between the inner wall faces
    ``x = (lo, hi)``, above ``floor``, below ``ceiling``. The robot shrinks it by its own
    geometry (:meth:`Robot.workspace`)."""

    x: tuple[float, float]
    floor: float
    ceiling: float


@dataclass(frozen=True)
class JointLimits:
    """Per command element (``Robot.command_layout`` order): position ``lower``/``upper``
    [m or rad] and ``velocity`` [m/s or rad/s], from the robot's model file."""

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray


class Robot(ABC):
    """A position-controlled robot, described once by the model file in its folder.

    Subclasses set the class attributes and implement :meth:`home` and :meth:`workspace`; the
    rest has defaults that read :attr:`model_file` (parsed by Drake; the hardware side takes
    joint names and limits from it) and :attr:`controllers_file` (ros2_control).

    Class attributes:
        name: registry name, e.g. ``"finger"``.
        model_file: the URDF (with a ``<ros2_control>`` block) or SDF.
        controllers_file: the ros2_control ``controllers.yaml`` next to it (its forward position
            controller names the command topic ``/<controller>/commands``).
        sections: scenario sections this robot owns, ``{section name: params dataclass}``
            (fields built with :func:`fingergym.scenario.param`, validated on load).
    """

    name: ClassVar[str]
    model_file: ClassVar[Path]
    controllers_file: ClassVar[Path | None] = None
    sections: ClassVar[Mapping[str, type]] = {}
    legacy_keys: ClassVar[Mapping[str, str | None]] = {}

    def __init__(self, scenario: Scenario):
        from fingergym.robot_model import RobotModel

        self.scenario = scenario
        self.model = RobotModel.load(self.model_file, self.controllers_file)

    # ------------------------------------------------------------------ description
    @property
    def command_layout(self) -> Layout:
        """Joints of the forward position controller, in command order (the action layout)."""
        return Layout(self.model.command_joints)

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Every joint the robot reports on ``/joint_states`` (command joints first)."""
        return self.model.state_joints

    @property
    def limits(self) -> JointLimits:
        """Position and velocity limits of the command joints (from the model file)."""
        return self.model.limits

    @property
    def controller_name(self) -> str:
        """The forward position controller (topic ``/<controller_name>/commands``)."""
        return self.model.controller_name

    def state_sources(self) -> dict[str, Source]:
        """Named robot state for observations: each command joint's position, then velocity.

        Names default to ``<joint>`` and ``<joint>_v``; a robot may rename them.
        """
        joints = self.model.command_joints
        return {**{j: Source("joint_position", j) for j in joints},
                **{f"{j}_v": Source("joint_velocity", j) for j in joints}}

    # ------------------------------------------------------------------ scenario-dependent
    @abstractmethod
    def home(self) -> np.ndarray:
        """The home command (n_cmd,) the hardware env homes to before each episode."""

    @abstractmethod
    def workspace(self, region: Region) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) command bounds (n_cmd,) each: the joint limits intersected with where the
        task lets the tool go (``region``), shrunk by the tool's geometry. Actions map affinely
        onto this box, and safety clamps every command into it."""

    def max_step(self, period: float) -> np.ndarray:
        """Largest change of each command element per command of ``period`` s (n_cmd,)
        [m or rad]: the model file's velocity limits times the period."""
        return np.asarray(self.limits.velocity, dtype=float) * float(period)

    def max_lead(self) -> np.ndarray | None:
        """Largest distance (n_cmd,) [m or rad] a command may lie from the measured position
        (``inf``: unbounded), or ``None`` (default: no bound). A position-controlled drive
        pushing against an obstacle applies a force that grows with this lead, so bounding it
        bounds the force, e.g. a gripper's grip."""
        return None

    # ------------------------------------------------------------------ sim
    def add_to_plant(self, plant: MultibodyPlant, scene_graph: SceneGraph,
                     contact: Callable[[bool], ProximityProperties]) -> ModelInstanceIndex:
        """Parse the model file into ``plant`` (not finalized); give every collision geometry
        ``contact(True)``'s proximity properties (compliant, the episode's friction). Returns
        the robot's model instance. Default: Drake's parser, then the home configuration."""
        from fingergym.robot_model import add_model

        return add_model(plant, scene_graph, self.model, contact(True), self.home())

    def add_controller(self, builder: DiagramBuilder, plant: MultibodyPlant,
                       instance: ModelInstanceIndex, params: Any) -> InputPort:
        """Add the sim's position controller; return its input: the command (n_cmd,).

        Default: Drake's ``InverseDynamicsController`` (gravity-compensated PD with
        ``params.kp``, ``params.kd``, ``scenario.controller.ki``) on a robot-only plant parsed
        from the same model file, with zero desired velocity."""
        from fingergym.robot_model import add_inverse_dynamics_controller

        return add_inverse_dynamics_controller(builder, plant, instance, self.model,
                                               params.kp, params.kd, self.scenario.controller.ki)


class Task(ABC):
    """What the robot must do: the scene it adds, what it observes, how it is rewarded.

    Subclasses set :attr:`name` and :attr:`sections` and implement the abstract methods. One
    task instance serves one scenario (``self.scenario``) and one robot (``self.robot``).

    Class attributes:
        name: registry name, e.g. ``"box_flipup"``.
        sections: scenario sections this task owns, ``{section name: params dataclass}``.
        legacy_keys: ``{old dotted key: new dotted key or None}``: where keys of older scenario
            files and bags moved (``None``: dropped), applied on load (robots have it too).
        param_rules: ``{episode parameter: scenario key}``: the key whose validation rules an
            override of that parameter (``replay --param``) must pass, e.g.
            ``{"box_mass": "box.mass"}``.
        tracked_objects: ``{object name: planar joint name}``: the objects whose pose the
            observation reads (a PlanarJoint in sim whose q = (x, z, theta); a PoseStamped
            topic ``/<object>/pose`` on hardware).
    """

    name: ClassVar[str]
    sections: ClassVar[Mapping[str, type]] = {}
    legacy_keys: ClassVar[Mapping[str, str | None]] = {}
    param_rules: ClassVar[Mapping[str, str]] = {}
    tracked_objects: ClassVar[Mapping[str, str]] = {}

    def __init__(self, scenario: Scenario, robot: Robot):
        self.scenario = scenario
        self.robot = robot

    # ------------------------------------------------------------------ observation
    @abstractmethod
    def observation(self) -> ObservationSpec:
        """The observation, by name (usually objects' poses and ``robot.state_sources()``)."""

    @property
    def observation_layout(self) -> Layout:
        return self.observation().layout

    # ------------------------------------------------------------------ scene and randomization
    @abstractmethod
    def nominal_params(self) -> dict[str, float]:
        """The task's own per-episode parameters without randomization (e.g. box mass, start
        pose); JSON-safe floats, stored in every sim bag."""

    @abstractmethod
    def draw_params(self, rng: np.random.Generator) -> dict[str, float]:
        """One randomized draw of :meth:`nominal_params`' keys (deterministic given ``rng``)."""

    def draw_episode(self, rng: np.random.Generator) -> Any:
        """The episode's :class:`~fingergym.sim.params.EpisodeParams`: :meth:`draw_params`,
        then the generic terms (:func:`fingergym.sim.params.draw_generic`). A task may
        override it to keep an older draw order (so seeds keep their episodes)."""
        from fingergym.sim.params import draw_generic

        return draw_generic(self.scenario, rng, self.draw_params(rng))

    def params_from_state(self, state: np.ndarray) -> dict[str, float]:
        """Nominal parameters with the start pose of ``state`` (observation layout): how a
        robot bag (no logged draw) is replayed in sim. Default: :meth:`nominal_params`."""
        return self.nominal_params()

    @abstractmethod
    def add_to_plant(self, plant: MultibodyPlant, params: Mapping[str, float],
                     contact: Callable[[bool], ProximityProperties]) -> None:
        """Add the scene (fixed geometry, objects with their planar joints) to ``plant`` before
        it is finalized. ``contact(compliant)`` gives the episode's proximity properties."""

    def check(self) -> None:
        """Cross-field checks of the task's sections; raise
        :class:`~fingergym.scenario.ScenarioError` naming ``scenario.source`` and the key."""
        return None

    def finalize_plant(self, plant: MultibodyPlant, scene_graph: SceneGraph,
                       robot: ModelInstanceIndex) -> None:
        """After ``plant.Finalize()``: e.g. collision filters. Default: nothing."""
        return None

    @abstractmethod
    def reach_region(self) -> Region:
        """Where the robot's tool may go (see :class:`Region`)."""

    def view_box(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, zmin, zmax) [m] of the scene for 2D views (Meshcat). Default: the
        reach region."""
        r = self.reach_region()
        return r.x[0], r.x[1], r.floor, r.ceiling

    def reset_scene(self, plant: MultibodyPlant, plant_context: Any,
                    params: Mapping[str, float], rng: np.random.Generator) -> str:
        """Virtual robot: put the objects back for a new episode (the person at a real robot);
        returns a one-line description. Raise ``RuntimeError`` if it cannot now."""
        raise RuntimeError(f"task {self.name!r} cannot reset its scene")

    # ------------------------------------------------------------------ reward and outcome
    @abstractmethod
    def reward(self, state: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        """Reward of a state (n_obs,) or batch (N, n_obs) (observation layout, noise-free) and
        the commanded target (n_cmd,) or (N, n_cmd). Must also accept a batch."""

    @abstractmethod
    def is_success(self, state: np.ndarray) -> bool:
        """Whether ``state`` (n_obs,) is a success (the env reports it; read it at the end)."""

    def info(self, state: np.ndarray) -> dict[str, float]:
        """Task quantities to report in ``info`` and evaluation tables (floats by name)."""
        return {}

    def potentials(self) -> dict[str, Callable[[np.ndarray], float]]:
        """Optional shaping potentials by name: observation (n_obs,) -> float. Training may add
        ``gamma * Phi(s') - Phi(s)`` to the reward (``shaping.potential``); evaluation never
        does. Default: none."""
        return {}

    def easy_starts(self) -> dict[str, Any]:
        """Optional reset curriculum: dotted scenario keys -> their easiest value, so that a
        reset drawn with them starts near success (training moves them to the scenario's own
        values as the success rate rises; ``curriculum.task_starts`` in the training config).
        Only keys of what a reset draws (ranges, the robot's home). Default: none."""
        return {}

    def expert(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """An optional scripted expert: true state (n_obs,) -> action (n_cmd,) in [-1, 1].
        Used for warm starts and demos; ``None`` if the task has none."""
        return None


@runtime_checkable
class Station(Protocol):
    """What the env needs from the Drake diagram behind its ports, sim or hardware alike
    (:class:`fingergym.sim.station.SimStation`, :class:`fingergym.hardware.station.
    HardwareStation`). Ports: input ``actions`` (m); outputs ``observations`` (n), ``state``
    (n), ``reward`` (1), ``target`` (m).

    A hardware station also has ``end_reason() -> str`` (non-empty: the episode was stopped,
    e.g. by the watchdog), ``extra_info(context) -> dict`` and ``close()``.
    """

    diagram: Any
    scaling: Any  # fingergym.scaling.ActionScaling of the robot on the task

    def hold_setpoint(self, root_context: Any, target: np.ndarray) -> None:
        """Start holding the command ``target`` (m,) (no stale command at reset)."""

    def measured_command(self, root_context: Any) -> np.ndarray:
        """The robot's command joints' positions now (m,)."""

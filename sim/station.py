"""The simulated station: a Drake Diagram of the scenario's task and robot with named ports.

Exported ports (the same names as the hardware station; n = the task's observation size,
m = the robot's command size):

- input ``actions`` (m): the agent's action in ``[-1, 1]^m``;
- output ``observations`` (n): the state in the task's observation layout, plus noise;
- output ``reward`` (1): :class:`RewardSystem` (the task's reward);
- output ``state`` (n): the true state; ``target`` (m): the commanded target;
- output ``rgb`` (image) when built with ``render=True``.

The set-point reaches the controller through a hold of period ``controller.period``, delayed
by ``params.action_delay_periods`` periods (the command latency of a real robot). With
``controller.rate_limit`` the hold is a :class:`RateLimitedHold`: the set-point moves towards
the target by at most the hardware safety layer's step per period (the model file's velocity
limits), so the sim's robot is no faster than the real one's command stream lets it be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydrake.common import RandomDistribution
from pydrake.geometry import (
    ClippingRange,
    ColorRenderCamera,
    DepthRange,
    DepthRenderCamera,
    MakeRenderEngineVtk,
    Meshcat,
    MeshcatVisualizer,
    MeshcatVisualizerParams,
    RenderCameraCore,
    RenderEngineVtkParams,
    Role,
)
from pydrake.math import RigidTransform, RollPitchYaw
from pydrake.multibody.meshcat import ContactVisualizer, ContactVisualizerParams
from pydrake.systems.framework import BasicVector, Context, Diagram, DiagramBuilder, LeafSystem
from pydrake.systems.primitives import (
    Adder,
    DiscreteTimeDelay,
    Gain,
    MatrixGain,
    RandomSource,
    ZeroOrderHold,
)
from pydrake.systems.sensors import CameraInfo, RgbdSensor

from fingergym.interfaces import Region, Task
from fingergym.scaling import ActionScaling, add_action_scaling, limit_step
from fingergym.scenario import Scenario
from fingergym.sim.params import EpisodeParams
from fingergym.sim.plant import add_controller, add_world, command_positions

RENDER_SIZE = (480, 320)  # width, height of rgb_array frames
VIEW_MIN_ASPECT = 1.25  # narrowest browser pane (width/height) that shows the whole bin


@dataclass
class SimStation:
    """A built station: the diagram plus the handles the env needs at reset."""

    diagram: Diagram
    scenario: Scenario
    params: EpisodeParams
    scaling: ActionScaling
    setpoint_holds: list  # ZeroOrderHold, RateLimitedHold and/or DiscreteTimeDelay, in order

    def hold_setpoint(self, root_context: Context, target: np.ndarray) -> None:
        """Fill the set-point hold/delay line with ``target`` (no stale command at reset)."""
        for hold in self.setpoint_holds:
            ctx = hold.GetMyMutableContextFromRoot(root_context)
            n = ctx.get_discrete_state_vector().size()
            ctx.SetDiscreteState(np.tile(np.asarray(target, dtype=float), n // self.scaling.dim))

    def measured_command(self, root_context: Context) -> np.ndarray:
        """The robot's command joints' positions now (m,)."""
        plant = self.diagram.GetSubsystemByName("plant")
        return command_positions(plant, plant.GetMyContextFromRoot(root_context), self.scenario)

    def set_state(self, root_context: Context, state: np.ndarray) -> None:
        """Set the plant's positions and velocities from a state in the observation layout
        (open-loop replay from a logged state). The set-point line is left to the caller."""
        plant = self.diagram.GetSubsystemByName("plant")
        P = self.diagram.GetSubsystemByName("state_selector").D()  # (n, nx): plant -> layout
        x = np.array(plant.GetPositionsAndVelocities(plant.GetMyContextFromRoot(root_context)))
        x[np.argmax(P, axis=1)] = np.asarray(state, dtype=float)
        plant.SetPositionsAndVelocities(plant.GetMyMutableContextFromRoot(root_context), x)


class RateLimitedHold(LeafSystem):
    """A zero-order hold of period ``period`` whose held value moves towards the input by at
    most ``max_step`` (m,) per period (:func:`fingergym.scaling.limit_step`, the rule of the
    hardware safety layer)."""

    def __init__(self, period: float, max_step: np.ndarray):
        super().__init__()
        self._max_step = np.asarray(max_step, dtype=float)
        m = len(self._max_step)
        self.DeclareVectorInputPort("u", m)
        state = self.DeclareDiscreteState(m)
        self.DeclareStateOutputPort("y", state)
        self.DeclarePeriodicDiscreteUpdateEvent(period, 0.0, self._update)

    def _update(self, context: Context, discrete_state) -> None:
        last = context.get_discrete_state_vector().get_value()
        target = self.get_input_port().Eval(context)
        discrete_state.set_value(limit_step(last, target, self._max_step))


def _add_camera(builder: DiagramBuilder, scene_graph, region: Region):
    scene_graph.AddRenderer("vtk", MakeRenderEngineVtk(RenderEngineVtkParams()))
    w, h = RENDER_SIZE
    x_mid = 0.5 * (region.x[0] + region.x[1])
    core = RenderCameraCore("vtk", CameraInfo(w, h, np.deg2rad(14)), ClippingRange(0.5, 5.0),
                            RigidTransform())
    # Camera on -y looking along +y at the bin; image x right, image y down (world -z).
    X_WC = RigidTransform(RollPitchYaw(-np.pi / 2, 0, 0),
                          [x_mid, -2.6, 0.5 * (region.floor + region.ceiling) - 0.05])
    sensor = builder.AddSystem(RgbdSensor(
        scene_graph.world_frame_id(), X_WC, ColorRenderCamera(core, False),
        DepthRenderCamera(core, DepthRange(0.51, 4.9))))
    builder.Connect(scene_graph.get_query_output_port(), sensor.query_object_input_port())
    builder.ExportOutput(sensor.color_image_output_port(), "rgb")


class RewardSystem(LeafSystem):
    """The task's reward as a Drake system; used by every station.

    Inputs: ``state`` (n, observation layout), ``target`` (m, the commanded target).
    Output: ``reward`` (1,).
    """

    def __init__(self, task: Task, n_obs: int, n_cmd: int):
        super().__init__()
        self._task = task
        self._state = self.DeclareVectorInputPort("state", n_obs)
        self._target = self.DeclareVectorInputPort("target", n_cmd)
        self.DeclareVectorOutputPort("reward", 1, self._calc_reward)

    def _calc_reward(self, context: Context, output: BasicVector) -> None:
        output.SetAtIndex(0, float(self._task.reward(self._state.Eval(context),
                                                     self._target.Eval(context))))


def build_sim_station(scenario: Scenario, params: EpisodeParams, *,
                      meshcat: Meshcat | None = None, render: bool = False) -> SimStation:
    """Build the simulated station Diagram for one episode's parameters."""
    task, robot = scenario.plugins()
    spec = task.observation()
    n_obs = len(spec.sources)
    builder = DiagramBuilder()
    handles = add_world(builder, scenario, params)
    plant = handles.plant
    command = add_controller(builder, scenario, params, handles)
    scaling = ActionScaling.from_scenario(scenario)
    m = scaling.dim

    # actions [-1, 1]^m -> saturate -> affine map onto the workspace -> held/delayed set-point.
    actions, target = add_action_scaling(builder, scaling)
    period = scenario.controller.period
    holds = []
    if scenario.controller.rate_limit:
        holds.append(RateLimitedHold(period, robot.max_step(period)))
    if params.action_delay_periods > 0:
        holds.append(DiscreteTimeDelay(period, params.action_delay_periods, m))
    elif not holds:
        holds.append(ZeroOrderHold(period, m))
    upstream = target
    for k, hold in enumerate(holds):
        builder.AddSystem(hold)
        hold.set_name(f"setpoint_hold_{k}")
        builder.Connect(upstream, hold.get_input_port())
        upstream = hold.get_output_port()
    builder.Connect(upstream, command)
    builder.ExportInput(actions, "actions")

    # True state in the observation layout; observations add Gaussian noise when configured.
    state = builder.AddSystem(MatrixGain(handles.state_selector))
    state.set_name("state_selector")
    builder.Connect(plant.get_state_output_port(), state.get_input_port())
    observed = state.get_output_port()
    if scenario.observation.object_velocity == "estimated":  # as on hardware; default: exact
        from fingergym.observation import EstimatedObjectVelocity, estimated_pairs

        pose, velocity = estimated_pairs(spec)
        estimator = builder.AddSystem(EstimatedObjectVelocity(
            scenario.observation.pose_rate, scenario.observation.velocity_window, n_obs,
            pose, velocity))
        builder.Connect(observed, estimator.get_input_port())
        observed = estimator.get_output_port()
    std = np.array([params.obs_noise_position if s.is_position else params.obs_noise_velocity
                    for s in spec.sources.values()])
    if np.any(std > 0):
        noise = builder.AddSystem(RandomSource(RandomDistribution.kGaussian, n_obs,
                                               scenario.episode.step))
        scale = builder.AddSystem(Gain(std))
        noisy = builder.AddSystem(Adder(2, n_obs))
        builder.Connect(noise.get_output_port(), scale.get_input_port())
        builder.Connect(observed, noisy.get_input_port(0))
        builder.Connect(scale.get_output_port(), noisy.get_input_port(1))
        builder.ExportOutput(noisy.get_output_port(), "observations")
    else:
        builder.ExportOutput(observed, "observations")

    reward = builder.AddSystem(RewardSystem(task, n_obs, m))
    builder.Connect(state.get_output_port(), reward.GetInputPort("state"))
    builder.Connect(target, reward.GetInputPort("target"))
    builder.ExportOutput(reward.GetOutputPort("reward"), "reward")
    builder.ExportOutput(state.get_output_port(), "state")
    builder.ExportOutput(target, "target")

    if meshcat is not None:
        add_meshcat(builder, handles.scene_graph, plant, meshcat, scenario)
    if render:
        _add_camera(builder, handles.scene_graph, task.reach_region())
    diagram = builder.Build()
    diagram.set_name(f"{scenario.task}_sim_station")
    return SimStation(diagram, scenario, params, scaling, holds)


def add_meshcat(builder: DiagramBuilder, scene_graph, plant, meshcat: Meshcat,
                scenario: Scenario) -> None:
    """Meshcat visuals in a 2D view of the task's scene, with contact forces drawn."""
    MeshcatVisualizer.AddToBuilder(builder, scene_graph, meshcat,
                                   MeshcatVisualizerParams(role=Role.kIllustration))
    set_2d_view(meshcat, scenario)
    # 200 N/m: the box's weight (~10 N) is a 5 cm arrow, the finger's push stays in view.
    ContactVisualizer.AddToBuilder(builder, plant, meshcat,
                                   ContactVisualizerParams(radius=0.005, newtons_per_meter=200.0))


def set_2d_view(meshcat: Meshcat, scenario: Scenario, margin: float = 0.04) -> None:
    """Meshcat's 2D view (orthographic, the x-z plane) framing the task's scene
    (:meth:`fingergym.interfaces.Task.view_box`) [m].

    Meshcat keeps the view's left edge, bottom and top and extends the right edge to the
    browser pane's aspect ratio, so the height is chosen for the narrowest common pane
    (width/height ``VIEW_MIN_ASPECT``, e.g. 1280x1024); wider panes show more room on the right.
    """
    task, _ = scenario.plugins()
    xmin, xmax, zmin, zmax = task.view_box()
    xmin, xmax, zmin, zmax = xmin - margin, xmax + margin, zmin - margin, zmax + margin
    height = max(zmax - zmin, (xmax - xmin) / VIEW_MIN_ASPECT)
    pad = 0.5 * (height - (zmax - zmin))
    meshcat.Set2dRenderMode(xmin=xmin, xmax=xmax, ymin=zmin - pad, ymax=zmax + pad)

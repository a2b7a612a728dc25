"""The simulated box flip-up station: a Drake Diagram with the task's named ports.

Exported ports (the same names as the hardware station):

- input ``actions`` (2): the agent's action in ``[-1, 1]^2``;
- output ``observations`` (10): the state in the :mod:`fingergym.task` layout, plus noise;
- output ``reward`` (1), ``success`` (1): from :class:`fingergym.task.RewardSystem`;
- output ``state`` (10): the true state; ``target`` (2): the commanded finger target [m];
- output ``rgb`` (image) when built with ``render=True``.

The set-point reaches the controller through a hold of period ``controller.period``, delayed
by ``params.action_delay_periods`` periods (the command latency of a real robot).
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
from pydrake.systems.analysis import Simulator
from pydrake.systems.framework import Context, Diagram, DiagramBuilder
from pydrake.systems.primitives import (
    Adder,
    ConstantVectorSource,
    DiscreteTimeDelay,
    Gain,
    MatrixGain,
    Multiplexer,
    RandomSource,
    ZeroOrderHold,
)
from pydrake.systems.sensors import CameraInfo, RgbdSensor

from fingergym.scenario import Scenario
from fingergym.sim.params import EpisodeParams
from fingergym.sim.plant import FLOOR_THICKNESS, add_box_flipup_plant, add_finger_controller
from fingergym.task import ACTION_DIM, OBS_DIM, ActionScaling, RewardSystem, add_action_scaling

RENDER_SIZE = (480, 320)  # width, height of rgb_array frames
VIEW_MIN_ASPECT = 1.25  # narrowest browser pane (width/height) that shows the whole bin


@dataclass
class SimStation:
    """A built station: the diagram plus the handles the env needs at reset."""

    diagram: Diagram
    scenario: Scenario
    params: EpisodeParams
    scaling: ActionScaling
    setpoint_hold: object  # ZeroOrderHold or DiscreteTimeDelay

    def hold_setpoint(self, root_context: Context, target: np.ndarray) -> None:
        """Fill the set-point hold/delay line with ``target`` [m] (no stale command at reset)."""
        ctx = self.setpoint_hold.GetMyMutableContextFromRoot(root_context)
        n = ctx.get_discrete_state_vector().size()
        ctx.SetDiscreteState(np.tile(np.asarray(target, dtype=float), n // ACTION_DIM))

    def set_state(self, root_context: Context, state: np.ndarray) -> None:
        """Set the plant's positions and velocities from a (10,) state in the observation layout
        (open-loop replay from a logged state). The set-point line is left to the caller."""
        plant = self.diagram.GetSubsystemByName("plant")
        P = self.diagram.GetSubsystemByName("state_selector").D()  # (10, nx): plant -> layout
        x = np.array(plant.GetPositionsAndVelocities(plant.GetMyContextFromRoot(root_context)))
        x[np.argmax(P, axis=1)] = np.asarray(state, dtype=float)
        plant.SetPositionsAndVelocities(plant.GetMyMutableContextFromRoot(root_context), x)


def _add_camera(builder: DiagramBuilder, scene_graph, scenario: Scenario):
    scene_graph.AddRenderer("vtk", MakeRenderEngineVtk(RenderEngineVtkParams()))
    w, h = RENDER_SIZE
    b = scenario.bin
    x_mid = 0.5 * (b.wall_x[0] + b.wall_x[1])
    core = RenderCameraCore("vtk", CameraInfo(w, h, np.deg2rad(14)), ClippingRange(0.5, 5.0),
                            RigidTransform())
    # Camera on -y looking along +y at the bin; image x right, image y down (world -z).
    X_WC = RigidTransform(RollPitchYaw(-np.pi / 2, 0, 0),
                          [x_mid, -2.6, b.floor_z + 0.5 * b.wall_height])
    sensor = builder.AddSystem(RgbdSensor(
        scene_graph.world_frame_id(), X_WC, ColorRenderCamera(core, False),
        DepthRenderCamera(core, DepthRange(0.51, 4.9))))
    builder.Connect(scene_graph.get_query_output_port(), sensor.query_object_input_port())
    builder.ExportOutput(sensor.color_image_output_port(), "rgb")


def build_sim_station(scenario: Scenario, params: EpisodeParams, *,
                      meshcat: Meshcat | None = None, render: bool = False) -> SimStation:
    """Build the simulated station Diagram for one episode's parameters."""
    builder = DiagramBuilder()
    handles = add_box_flipup_plant(builder, scenario, params)
    plant = handles.plant
    controller = add_finger_controller(builder, scenario, params, handles)
    scaling = ActionScaling.from_scenario(scenario)

    # actions [-1, 1]^2 -> saturate -> affine map onto the workspace -> held/delayed set-point.
    actions, target = add_action_scaling(builder, scaling)
    period = scenario.controller.period
    if params.action_delay_periods > 0:
        hold = builder.AddSystem(DiscreteTimeDelay(period, params.action_delay_periods,
                                                   ACTION_DIM))
    else:
        hold = builder.AddSystem(ZeroOrderHold(period, ACTION_DIM))
    hold.set_name("setpoint_hold")
    builder.Connect(target, hold.get_input_port())
    desired = builder.AddSystem(Multiplexer([ACTION_DIM, ACTION_DIM]))
    zero_velocity = builder.AddSystem(ConstantVectorSource(np.zeros(ACTION_DIM)))
    builder.Connect(hold.get_output_port(), desired.get_input_port(0))
    builder.Connect(zero_velocity.get_output_port(), desired.get_input_port(1))
    builder.Connect(desired.get_output_port(), controller.get_input_port_desired_state())
    builder.ExportInput(actions, "actions")

    # True state in the observation layout; observations add Gaussian noise when configured.
    state = builder.AddSystem(MatrixGain(handles.state_permutation))
    state.set_name("state_selector")
    builder.Connect(plant.get_state_output_port(), state.get_input_port())
    observed = state.get_output_port()
    if scenario.observation.box_velocity == "estimated":  # as on hardware; default: exact
        from fingergym.observation import EstimatedBoxVelocity

        estimator = builder.AddSystem(EstimatedBoxVelocity(scenario.observation.pose_rate,
                                                           scenario.observation.velocity_window))
        builder.Connect(observed, estimator.get_input_port())
        observed = estimator.get_output_port()
    std = np.r_[[params.obs_noise_position] * 5, [params.obs_noise_velocity] * 5]
    if np.any(std > 0):
        noise = builder.AddSystem(RandomSource(RandomDistribution.kGaussian, OBS_DIM,
                                               scenario.episode.step))
        scale = builder.AddSystem(Gain(std))
        noisy = builder.AddSystem(Adder(2, OBS_DIM))
        builder.Connect(noise.get_output_port(), scale.get_input_port())
        builder.Connect(observed, noisy.get_input_port(0))
        builder.Connect(scale.get_output_port(), noisy.get_input_port(1))
        builder.ExportOutput(noisy.get_output_port(), "observations")
    else:
        builder.ExportOutput(observed, "observations")

    reward = builder.AddSystem(RewardSystem(scenario))
    builder.Connect(state.get_output_port(), reward.GetInputPort("state"))
    builder.Connect(target, reward.GetInputPort("target"))
    builder.ExportOutput(reward.GetOutputPort("reward"), "reward")
    builder.ExportOutput(reward.GetOutputPort("success"), "success")
    builder.ExportOutput(state.get_output_port(), "state")
    builder.ExportOutput(target, "target")

    if meshcat is not None:
        add_meshcat(builder, handles.scene_graph, plant, meshcat, scenario)
    if render:
        _add_camera(builder, handles.scene_graph, scenario)
    diagram = builder.Build()
    diagram.set_name("box_flipup_sim_station")
    return SimStation(diagram, scenario, params, scaling, hold)


def add_meshcat(builder: DiagramBuilder, scene_graph, plant, meshcat: Meshcat,
                scenario: Scenario) -> None:
    """Meshcat visuals in a 2D view of the bin, with contact forces drawn."""
    MeshcatVisualizer.AddToBuilder(builder, scene_graph, meshcat,
                                   MeshcatVisualizerParams(role=Role.kIllustration))
    set_2d_bin_view(meshcat, scenario)
    # 200 N/m: the box's weight (~10 N) is a 5 cm arrow, the finger's push stays in view.
    ContactVisualizer.AddToBuilder(builder, plant, meshcat,
                                   ContactVisualizerParams(radius=0.005, newtons_per_meter=200.0))


def set_2d_bin_view(meshcat: Meshcat, scenario: Scenario, margin: float = 0.04) -> None:
    """Meshcat's 2D view (orthographic, the x-z plane) framing the whole bin [m].

    Meshcat keeps the view's left edge, bottom and top and extends the right edge to the
    browser pane's aspect ratio, so the height is chosen for the narrowest common pane
    (width/height ``VIEW_MIN_ASPECT``, e.g. 1280x1024); wider panes show more room on the right.
    """
    b = scenario.bin
    xmin = b.wall_x[0] - b.wall_thickness - margin
    xmax = b.wall_x[1] + b.wall_thickness + margin
    zmin = b.floor_z - FLOOR_THICKNESS - margin
    zmax = b.floor_z + b.wall_height + margin
    height = max(zmax - zmin, (xmax - xmin) / VIEW_MIN_ASPECT)
    pad = 0.5 * (height - (zmax - zmin))
    meshcat.Set2dRenderMode(xmin=xmin, xmax=xmax, ymin=zmin - pad, ymax=zmax + pad)


def make_sim_simulator(scenario: Scenario, params: EpisodeParams, **kwargs) -> Simulator:
    """A Simulator for the station (no real-time pacing; the env advances it)."""
    station = build_sim_station(scenario, params, **kwargs)
    simulator = Simulator(station.diagram)
    simulator.set_target_realtime_rate(0.0)
    simulator.station = station  # the env needs hold_setpoint() at reset
    return simulator

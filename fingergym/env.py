"""The environment: a thin subclass of ``pydrake.gym.DrakeGymEnv`` shared by sim and hardware,
for any task on any robot (the scenario names them).

Sim and hardware differ only in the station behind the ports (``actions`` in; ``observations``,
``reward`` out). :func:`make_env` picks the station.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from pydrake.common import RandomGenerator
from pydrake.geometry import Meshcat, StartMeshcat
from pydrake.gym import DrakeGymEnv
from pydrake.systems.analysis import Simulator

from fingergym.layout import Layout
from fingergym.scaling import ActionScaling, check_action
from fingergym.scenario import Scenario, as_scenario

RENDER_MODES = ("human", "rgb_array", "ansi")
_STEP_GUARD = 1e-9  # relative: how far short of a step boundary each step stops


def action_space(dim: int) -> gym.spaces.Box:
    # Upstream rough edge: a Box built from float64 bounds with dtype float32 warns about lost
    # precision in every SubprocVecEnv worker; build the bounds as float32 up front.
    one = np.ones(dim, dtype=np.float32)
    return gym.spaces.Box(low=-one, high=one, dtype=np.float32)


def observation_space(bound: np.ndarray) -> gym.spaces.Box:
    bound = np.asarray(bound).astype(np.float32)
    return gym.spaces.Box(low=-bound, high=bound, dtype=np.float32)


class FingerGymEnv(DrakeGymEnv):
    """DrakeGymEnv with the upstream rough edges fixed (each marked where it is fixed).

    ``info`` carries ``sim_time``, ``success`` / ``is_success`` (the task's success now; read it
    at the end of an episode), ``target`` and the task's own quantities
    (:meth:`fingergym.interfaces.Task.info`, e.g. ``angle_from_vertical`` for the flip-up).
    ``observation_layout`` / ``action_layout`` name the vectors' elements.
    """

    def __init__(self, simulator: Simulator | Callable[[RandomGenerator], Simulator], *,
                 scenario: Scenario, station_of: Callable[[Simulator], Any],
                 render_mode: str | None = None, hardware: bool = False,
                 reset_handler: Callable | None = None):
        # Upstream rough edge: DrakeGymEnv.__init__ writes into `self.metadata`, which is the
        # class attribute shared by every gymnasium.Env; give this instance its own dict first.
        self.metadata = {"render_modes": list(RENDER_MODES), "render_fps": 0}
        self.scenario = scenario
        self.task, self.robot = scenario.plugins()
        spec = self.task.observation()
        self.observation_layout: Layout = spec.layout
        self.action_layout: Layout = self.robot.command_layout
        self._nominal_step = scenario.episode.step
        self.scaling = ActionScaling.from_scenario(scenario)
        self._station_of = station_of
        super().__init__(
            simulator=simulator,
            time_step=scenario.episode.step,
            action_space=action_space(self.action_layout.size),
            observation_space=observation_space(spec.bound),
            reward="reward",
            action_port_id="actions",
            observation_port_id="observations",
            render_rgb_port_id="rgb" if render_mode == "rgb_array" else None,
            render_mode=render_mode or "human",
            reset_handler=reset_handler,
            info_handler=self._info,
            hardware=hardware,
        )
        self.metadata = {"render_modes": list(RENDER_MODES),
                         "render_fps": int(round(1.0 / scenario.episode.step))}
        # Upstream bug: DrakeGymEnv tests `if info_handler is callable(info_handler)`, which is
        # never true for a function, so the handler is silently dropped. Install it here.
        self.info_handler = self._info
        self.render_mode = render_mode
        self._last_end_reason = ""

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, _ = super().reset(seed=seed, options=options)
        context = self.simulator.get_mutable_context()
        station = self._station_of(self.simulator)
        # Upstream rough edge: the `actions` input keeps the previous episode's fixed value
        # after reset(). Fix it to "hold the robot where it is" and fill the set-point line.
        hold = self.scaling.clamp_target(station.measured_command(context))
        station.hold_setpoint(context, hold)
        self.action_port.FixValue(context, self.scaling.to_action(hold))
        self.simulator.Initialize()
        obs = self.observation_port.Eval(context)
        return np.asarray(obs, dtype=np.float32), self._info(self.simulator)

    def step(self, action):
        # Bad input: a wrong-shaped, NaN or infinite action raises ValueError before anything is
        # applied, so the env stays usable.
        a = check_action(action, self.action_layout.size)
        # Upstream rough edge: DrakeGymEnv.step advances to `time + time_step` summed in floating
        # point (0.1 + 0.1 + 0.1 = 0.30000000000000004), which lands just past or short of the
        # periodic updates at k * period: some steps then run 11 set-point/plant updates and the
        # next 9. Advance to just short of the k-th step time instead, so every step runs exactly
        # the updates in [t_k, t_k+1); an update at the boundary runs at the next step's start.
        t = self.simulator.get_context().get_time()
        k = int(round(t / self._nominal_step)) + 1
        self.time_step = k * self._nominal_step * (1.0 - _STEP_GUARD) - t
        try:
            obs, reward, terminated, truncated, info = super().step(a)
        finally:
            self.time_step = self._nominal_step
        if not info and truncated:  # the simulator faulted; upstream returns an empty info
            info = self._info(self.simulator)
            info["end_reason"] = "simulator_error"
        time = self.simulator.get_context().get_time()
        # Upstream rough edge: the reference reports the time limit as `terminated`; the
        # observation holds no time, so it is a truncation.
        if time >= self.scenario.episode.time_limit * (1.0 - 2 * _STEP_GUARD):
            truncated = True
            info.setdefault("end_reason", "time_limit")
        # A station may stop the episode early (hardware: the watchdog); that is a truncation.
        reason = getattr(self.station, "end_reason", lambda: "")()
        if reason:
            terminated, truncated = False, True
            info["end_reason"] = reason
        return np.asarray(obs, dtype=np.float32), float(reward), terminated, truncated, info

    def hold_action(self) -> np.ndarray:
        """The action (n_cmd,) that holds the robot where it is now (target = its position)."""
        station = self.station
        command = station.measured_command(self.simulator.get_context())
        return self.scaling.to_action(self.scaling.clamp_target(command)).astype(np.float32)

    def set_scenario(self, scenario: Scenario) -> None:
        """Use ``scenario`` from the next ``reset()`` on (training curricula over the reset
        distribution). Task, robot, episode, action scaling and observation layout must stay
        the same: only what a reset draws may differ."""
        same = (scenario.task == self.scenario.task and scenario.robot == self.scenario.robot
                and scenario.episode == self.scenario.episode
                and np.array_equal(ActionScaling.from_scenario(scenario).low, self.scaling.low)
                and np.array_equal(ActionScaling.from_scenario(scenario).high,
                                   self.scaling.high))
        if not same:
            raise ValueError("set_scenario: task, robot, episode or workspace differ from the "
                             "env's scenario")
        self.scenario = scenario

    def render(self):
        """``rgb_array``: an (H, W, 3 or 4) uint8 frame; ``ansi``: one line of the state by
        name; ``human``: redraw Meshcat. Without a render mode: ``None`` (a Meshcat passed to
        :func:`make_env` draws as the simulation advances)."""
        if self.render_mode == "rgb_array":
            return np.ascontiguousarray(super().render())
        if self.render_mode == "ansi":
            # Upstream returns repr(Context) (memory addresses); show the state by name.
            state = self.true_state()
            t = self.simulator.get_context().get_time()
            return f"t={t:5.2f}s " + " ".join(
                f"{n}={v:+.3f}" for n, v in zip(self.observation_layout.names, state))
        if self.render_mode == "human":
            return super().render()
        # Upstream bug: DrakeGymEnv.render falls through to `super(DrakeGymEnv).render()`
        # (an unbound super) for any other mode, which raises AttributeError.
        return None

    def close(self):
        # The hardware station owns a ROS node; the sim station nothing to release.
        if self.simulator is not None and hasattr(self.station, "close"):
            self.station.close()
        super().close()

    # ------------------------------------------------------------------ helpers
    @property
    def station(self):
        """The station behind the ports of the current episode."""
        return self._station_of(self.simulator)

    def true_state(self) -> np.ndarray:
        """The noise-free state (n,) in the observation layout."""
        return self.station.diagram.GetOutputPort("state").Eval(self.simulator.get_context())

    def _info(self, simulator: Simulator) -> dict[str, Any]:
        context = simulator.get_context()
        diagram = self._station_of(simulator).diagram
        state = diagram.GetOutputPort("state").Eval(context)
        success = self.task.is_success(state)
        info: dict[str, Any] = {
            "sim_time": round(float(context.get_time()), 6),  # steps stop 1e-9 short
            "success": success,
            "is_success": success,  # the key stable-baselines3's callbacks read
            **self.task.info(state),
        }
        if diagram.GetInputPort("actions").HasValue(context):  # not yet inside upstream reset()
            info["target"] = np.array(diagram.GetOutputPort("target").Eval(context))
            extra = getattr(self._station_of(simulator), "extra_info", None)  # hardware
            if extra is not None:
                info.update(extra(context))
        return info


def make_env(scenario: Scenario | str | Path | None = None, mode: str = "sim", *,
             randomize: bool = True, render_mode: str | None = None,
             meshcat: Meshcat | bool | None = None, **options: Any) -> FingerGymEnv:
    """Create the env of a scenario's task on its robot.

    Args:
        scenario: a :class:`Scenario`, a path to a scenario YAML, or ``None`` for the default
            (``configs/scenario.yaml``: the box flip-up on the finger).
        mode: ``"sim"`` (Drake simulation, domain randomized) or ``"hardware"`` (ROS 2).
        randomize: sim only; ``False`` uses the nominal parameters every episode.
        render_mode: ``"rgb_array"`` for frames, ``"human"`` to draw in Meshcat.
        meshcat: a Meshcat instance, or ``True`` to start one (implied by ``"human"``).
        options: passed to the hardware station (see :mod:`fingergym.hardware`).
    """
    scenario = as_scenario(scenario)
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    if mode == "sim":
        from fingergym.sim.params import draw_params, nominal_params
        from fingergym.sim.station import build_sim_station

        if options:
            raise TypeError(f"unknown sim option(s): {sorted(options)}")
        if meshcat is True or (meshcat is None and render_mode == "human"):
            meshcat = StartMeshcat()
        stations: dict[int, Any] = {}

        def make_simulator(generator: RandomGenerator) -> Simulator:
            s = env.scenario  # the env's current scenario (a curriculum may change it)
            params = draw_params(s, generator) if randomize else nominal_params(s)
            station = build_sim_station(s, params, meshcat=meshcat or None,
                                        render=render_mode == "rgb_array")
            simulator = Simulator(station.diagram)
            stations.clear()
            stations[id(simulator)] = station
            return simulator

        env = FingerGymEnv(make_simulator, scenario=scenario,
                           station_of=lambda sim: stations[id(sim)], render_mode=render_mode)
        env.meshcat = meshcat or None
        return env
    if mode == "hardware":
        from fingergym.hardware.env import make_hardware_env

        return make_hardware_env(scenario, render_mode=render_mode, **options)
    raise ValueError(f"mode must be 'sim' or 'hardware', got {mode!r}")

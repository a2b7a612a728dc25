"""Experimental: ZoBG / FoBG / AoBG on the box flip-up, FoBG through Drake's AutoDiffXd.

The objective is minus the *return* of an open-loop finger trajectory on the training env's
own physics. The decision variables ``theta`` are finger-centre set-points at a few knots
(``(K, 2)`` flattened to ``d = 2K``); the set-point is interpolated linearly from the finger's
home position at ``t = 0`` through the knots, clamped to the reachable workspace like the
env's actions, and sent once per controller period.

One source of truth for the physics: the plant is
:func:`fingergym.sim.plant.add_world` (the box flip-up task on the finger) with the shipped
scenario
(:func:`fingergym.scenario.load_scenario`) and its nominal episode parameters
(:func:`fingergym.sim.params.nominal_params`): the same bin/box/finger geometry, corner
spheres, point contact with the scenario's discrete approximation, friction and plant time
step as the env. The diagram holds only the plant and its scene graph (Python LeafSystems
such as the station's ``RewardSystem`` do not convert to AutoDiffXd), converted with
``diagram.ToAutoDiffXd()``. The station's finger controller (Drake's
``InverseDynamicsController`` on the finger-only model, ``ki = 0``, zero desired velocity and
acceleration) is applied inside the rollout as ``u = M (kp (s - q) - kd v) - tau_g`` with
``M``, ``tau_g`` taken from that same finger-only model (``robots/finger/finger.urdf``)
- for the point finger on two prismatic joints ``M = m I``, ``tau_g = (0, -m g)``. As in the
station, the set-point passes a zero-order hold of period ``controller.period``, so the plant
step at ``t_k`` uses the set-point commanded one period earlier
(:meth:`BoxFlip.check_against_station` compares the two trajectories).

Return: the sum over env steps (``episode.step``) of the task's reward
(:meth:`fingergym.tasks.box_flipup.BoxFlipUp.reward`) on the state in the observation layout
(``handles.state_selector``) with the set-point in force,
as ``env.step`` returns it (up to the env's floating-point clock, see
:meth:`BoxFlip.check_against_station`). ``f(theta) = -return``. Float rollouts use
the task's reward itself. It is numpy-float only, so the AutoDiffXd
rollout differentiates a transcription of its formula (:func:`_reward_autodiff`) and checks
on every call that the transcription's value equals ``task.reward``'s.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .estimators import Array, Objective, bernstein_eps, choose_alpha

SIGMAS = (0.005, 0.02)
# nominal knots (finger-centre set-points [m]) at t = horizon * k / K, k = 1..K (found by a
# short cross-entropy search on the float rollout): behind the box's right end and low, push
# it left against the wall, then up-left on its lower-right corner so it pivots about its
# corner at the wall, and press it upright into the wall.
NOMINAL_KNOTS: tuple[tuple[float, float], ...] = (
    (0.17, 0.013), (0.108, 0.011), (-0.038, 0.086), (-0.248, 0.221), (-0.248, 0.111))
NOMINAL_HORIZON = 3.5  # [s] of NOMINAL_KNOTS


def robot_only_dynamics(robot: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mass matrix and gravity forces of the robot-only model (parsed from its model file) on
    which the station's InverseDynamicsController acts: (n, n) and (n,)."""
    from pydrake.multibody.parsing import Parser
    from pydrake.multibody.plant import MultibodyPlant

    model = MultibodyPlant(time_step=0.0)
    Parser(model).AddModels(str(robot.model_file))
    model.Finalize()
    context = model.CreateDefaultContext()
    return model.CalcMassMatrix(context), model.CalcGravityGeneralizedForces(context)


@dataclass(frozen=True)
class BoxFlipConfig:
    """The open-loop problem: knots, horizon, and which scenario file (``None``: shipped)."""

    knots: tuple[tuple[float, float], ...] = NOMINAL_KNOTS
    horizon: float = NOMINAL_HORIZON  # [s]; a multiple of the env step
    scenario: str | None = None

    @property
    def theta0(self) -> Array:
        """Nominal decision variable ``(2K,)``."""
        return np.asarray(self.knots, dtype=np.float64).ravel()


def _layout() -> Any:
    """The flip-up's observation layout (on the finger, the shipped scenario)."""
    from fingergym.scenario import load_scenario

    return load_scenario().plugins()[0].observation_layout


def _reward_autodiff(state: Any, target: Any, layout: Any = None) -> Any:
    """The flip-up reward written out for AutoDiffXd (scalar state (10,), target (2,)), read by
    name from ``layout`` (default: the shipped scenario's).

    ``angle_from_vertical = (theta mod pi) - pi/2`` with the branch taken at theta's value.
    """
    lay = layout or _layout()
    theta = state[lay.index("box_theta")]
    omega = state[lay.index("box_omega")]
    a = theta - math.pi * math.floor(theta.value() / math.pi) - math.pi / 2
    effort = target - state[lay["robot_q"]]
    fv = state[lay["robot_v"]]
    cost = (2.0 * a * a + 0.1 * omega * omega
            + 0.1 * (effort[0] * effort[0] + effort[1] * effort[1])
            + 0.1 * (fv[0] * fv[0] + fv[1] * fv[1]))
    return 10.0 - cost


def _clamp(x: Any, lo: float, hi: float) -> Any:
    """``clip`` for float or AutoDiffXd (the clamped branch is a constant)."""
    v = x.value() if hasattr(x, "value") else float(x)
    if v < lo:
        return type(x)(lo) if hasattr(x, "value") else lo
    if v > hi:
        return type(x)(hi) if hasattr(x, "value") else hi
    return x


@dataclass
class Rollout:
    """One open-loop rollout: states at the env steps (observation layout), rewards, return."""

    states: Any    # (N + 1, 10): t = 0, step, ..., N step
    targets: Any   # (N, 2): set-point in force at the end of each env step
    rewards: Any   # (N,)
    ret: Any       # sum of rewards (float or AutoDiffXd)
    trace: Any = None  # (n_steps + 1, 10): after every plant step (``trace=True`` only)


class EpisodePlant:
    """The env's plant for one episode's parameters (``float`` and ``AutoDiffXd`` copies).

    ``params``: a :class:`fingergym.sim.params.EpisodeParams` (nominal, or the env's draw for a
    seed, :func:`episode_params`). Holds what a rollout needs besides the diagrams: the
    initial state, the plant-state -> observation selection, the finger controller's model
    terms (``M``, ``tau_g``), the action scaling and the clocks of the scenario.
    """

    def __init__(self, scenario: Any, params: Any):
        from pydrake.systems.framework import DiagramBuilder

        from fingergym.scaling import ActionScaling
        from fingergym.sim.plant import add_world

        s = scenario
        self.scenario, self.params = s, params
        self.task, self.robot = s.plugins()
        self.layout = self.task.observation_layout
        self.q_idx = self.layout.indices(["robot_q"])
        self.v_idx = self.layout.indices(["robot_v"])
        builder = DiagramBuilder()
        handles = add_world(builder, s, params)
        self.diagram = builder.Build()
        self.diagram_ad = self.diagram.ToAutoDiffXd()
        self.plant_name = handles.plant.get_name()
        self.x0 = np.array(handles.plant.GetPositionsAndVelocities(
            handles.plant.GetMyContextFromRoot(self.diagram.CreateDefaultContext())))
        self.select = np.argmax(handles.state_selector, axis=1)  # plant state -> obs
        # the station's controller: InverseDynamicsController on the robot-only model
        self.mass_matrix, self.gravity = robot_only_dynamics(self.robot)
        self.scaling = ActionScaling.from_scenario(s)
        self.dt = s.plant.time_step
        self.period = s.controller.period
        self.env_step = s.episode.step
        self.home = np.asarray(self.robot.home(), dtype=np.float64)
        for name, ratio in (("controller.period/plant.time_step", self.period / self.dt),
                            ("episode.step/controller.period", self.env_step / self.period)):
            if abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(f"{name} = {ratio} must be an integer")
        if s.observation.object_velocity != "exact":
            raise ValueError("only observation.object_velocity: exact is modelled")

    def closed_loop(self, policy: Any, n_steps: int, obs_noise: Array | None = None,
                    n_derivatives: int = 0) -> Episode:
        """One episode of ``n_steps`` env steps under ``policy(i, obs) -> action (2,)``.

        Mirrors ``env.reset(seed)`` + ``env.step``: the action (float, or AutoDiffXd with
        ``n_derivatives`` > 0) is clipped to ``[-1, 1]`` and mapped to the finger target like
        :meth:`fingergym.scaling.ActionScaling.to_target`, sent to the set-point hold every
        controller period of the env step, delayed by ``params.action_delay_periods``
        periods (the line starts full of the home position, as after ``env.reset``), and
        tracked by the station's PD law. ``obs_noise`` ``(n_steps, 10)`` is added to the state
        the policy sees (the env's observation noise; ``None``: none). The reward of env step
        ``i`` is the task's reward of the state at its end and its target.
        """
        from pydrake.autodiffutils import AutoDiffXd
        from pydrake.systems.analysis import Simulator_

        reward = self.task.reward
        ad = n_derivatives > 0
        diagram = self.diagram_ad if ad else self.diagram
        plant = diagram.GetSubsystemByName(self.plant_name)
        ctx = diagram.CreateDefaultContext()
        pctx = plant.GetMyMutableContextFromRoot(ctx)
        if ad:
            # Seed the state and the hold with zero derivatives of the full size (see
            # BoxFlip.rollout: Drake 1.51's SAP update otherwise drops them).
            def T(v: float) -> Any:
                return AutoDiffXd(v, np.zeros(n_derivatives))
        else:
            T = float
        plant.SetPositionsAndVelocities(pctx, np.array([T(v) for v in self.x0]))
        sim = Simulator_[AutoDiffXd if ad else float](diagram, ctx)
        sim.Initialize()
        port = plant.get_actuation_input_port()
        M, tau_g = self.mass_matrix, self.gravity
        kp, kd, delay = self.params.kp, self.params.kd, self.params.action_delay_periods
        lo, hi = self.scaling.low, self.scaling.high
        centre, half = self.scaling.center, self.scaling.half_range
        spp = int(round(self.period / self.dt))
        per_env = int(round(self.env_step / self.period))
        held = (T(self.home[0]), T(self.home[1]))
        x = np.asarray(plant.GetPositionsAndVelocities(pctx))[self.select]
        states, actions, targets, rewards, commands = [x], [], [], [], []
        k = 0
        for i in range(n_steps):
            obs = x if obs_noise is None else x + obs_noise[i]
            a = policy(i, obs)
            target = tuple(_clamp(centre[c] + half[c] * _clamp(a[c], -1.0, 1.0), lo[c], hi[c])
                           for c in range(2))
            commands += [target] * per_env
            for _ in range(per_env * spp):
                j = -(-k // spp) - 1 - delay  # period whose command reaches the plant at t_k
                sp = held if j < 0 else commands[j]
                q, v = x[self.q_idx], x[self.v_idx]
                e = np.array([sp[0] - q[0], sp[1] - q[1]])
                port.FixValue(pctx, M @ (kp * e - kd * v) - tau_g)
                k += 1
                sim.AdvanceTo(k * self.dt)
                x = np.asarray(plant.GetPositionsAndVelocities(pctx))[self.select]
            if ad:
                r = _reward_autodiff(x, np.array(target), self.layout)
                ref = float(reward(_values(x), _values(target)))
                if abs(r.value() - ref) > 1e-9 * max(1.0, abs(ref)):
                    raise RuntimeError("the task's reward changed: update "
                                       f"_reward_autodiff ({r.value()} != {ref})")
            else:
                r = float(reward(x, np.array(target, dtype=float)))
            states.append(x)
            actions.append(a)
            targets.append(target)
            rewards.append(r)
        return Episode(np.array(states), np.array(actions), np.array(targets),
                       np.array(rewards), self)


def episode_params(scenario: Any, seed: int) -> Any:
    """The parameters ``fingergym.make_env(scenario).reset(seed=seed)`` draws (randomized)."""
    from pydrake.common import RandomGenerator

    from fingergym.sim.params import draw_params

    return draw_params(scenario, RandomGenerator(seed))


def load_scenario(path: str | None = None) -> Any:
    """The scenario (``None``: the shipped one)."""
    from fingergym.scenario import load_scenario as load

    return load(path)


def obs_noise_std(scenario: Any, params: Any) -> Array:
    """Std (n,) of the env's observation noise for these parameters (observation layout), as
    the sim station sets it."""
    spec = scenario.plugins()[0].observation()
    return np.array([params.obs_noise_position if s.is_position else params.obs_noise_velocity
                     for s in spec.sources.values()])


def angle_from_vertical(theta: Any) -> Any:
    """The flip-up's angle from vertical for float or AutoDiffXd (branch at the value)."""
    from fingergym.tasks.box_flipup.task import angle_from_vertical as afv

    v = theta.value() if hasattr(theta, "value") else float(theta)
    return theta + (float(afv(v)) - v)


@functools.cache
def obs_index(name: str) -> int:
    """Index of an element of the flip-up's observation layout (the shipped scenario's) by
    name (``"box_omega"``...)."""
    return _layout().index(name)


def _values(x: Any) -> Array:
    return np.array([v.value() if hasattr(v, "value") else float(v) for v in np.ravel(x)])


@dataclass
class Episode:
    """A closed-loop episode. ``states`` ``(n+1, 10)`` (observation layout, true state),
    ``actions`` ``(n, 2)`` (as the policy returned them), ``targets`` ``(n, 2)`` [m],
    ``rewards`` ``(n,)``; float or AutoDiffXd entries."""

    states: Any
    actions: Any
    targets: Any
    rewards: Any
    plant: EpisodePlant

    @property
    def params(self) -> Any:
        return self.plant.params

    @property
    def ret(self) -> Any:
        return sum(self.rewards[1:], self.rewards[0])

    def state_values(self) -> Array:
        """``(n+1, 10)`` float."""
        return _values(self.states).reshape(self.states.shape)

    def reward_values(self) -> Array:
        return _values(self.rewards)

    def reward_gradients(self) -> Array:
        """``(n, d)``: d reward_i / d (derivative variables); AutoDiffXd episodes only."""
        return np.array([np.asarray(r.derivatives(), dtype=np.float64) for r in self.rewards])

    def success(self) -> bool:
        """The task's ``is_success`` of the final state."""
        return bool(self.plant.task.is_success(self.state_values()[-1]))

    def contact_modes(self, tol: float = 2e-3) -> Array:
        """``(n+1, 4)`` bool per state: finger-box, box-floor, box-left wall, box-right wall
        (gap below ``tol`` [m], from the geometry of the scenario and this episode's box)."""
        s, p, lay = self.plant.scenario, self.params.task, self.plant.layout
        x = self.state_values()
        bx, bz, th = (x[:, lay.index(n)] for n in ("box_x", "box_z", "box_theta"))
        fx, fz = x[:, self.plant.q_idx].T
        c, sn = np.cos(th), np.sin(th)
        hl, ht = 0.5 * p["box_length"], 0.5 * p["box_thickness"]
        corners = np.stack([np.stack([bx + sx * hl * c - sy * ht * sn,
                                      bz + sx * hl * sn + sy * ht * c], axis=-1)
                            for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))], axis=1)
        # finger centre in the box frame, distance to the rectangle
        dx, dz = fx - bx, fz - bz
        u, v = c * dx + sn * dz, -sn * dx + c * dz
        gap = np.hypot(np.maximum(np.abs(u) - hl, 0), np.maximum(np.abs(v) - ht, 0))
        finger = gap - self.plant.robot.radius < tol
        floor = corners[:, :, 1].min(axis=1) - s.bin.floor_z < tol
        left = corners[:, :, 0].min(axis=1) - s.bin.wall_x[0] < tol
        right = s.bin.wall_x[1] - corners[:, :, 0].max(axis=1) < tol
        return np.stack([finger, floor, left, right], axis=1)


CONTACT_PAIRS = ("finger-box", "box-floor", "box-left wall", "box-right wall")


@dataclass
class BoxFlip:
    """The env's plant (``float`` and ``AutoDiffXd`` copies) and open-loop rollouts of it."""

    config: BoxFlipConfig = field(default_factory=BoxFlipConfig)

    def __post_init__(self) -> None:
        self._build()

    # -- construction ----------------------------------------------------------------------

    def _build(self) -> None:

        from fingergym.scenario import load_scenario
        from fingergym.sim.params import nominal_params

        s = load_scenario(self.config.scenario)
        self.scenario = s
        self.task, self.robot = s.plugins()
        lay = self.task.observation_layout
        self.layout = lay
        self._q, self._v = lay.indices(["robot_q"]), lay.indices(["robot_v"])
        self.params = nominal_params(s)
        if self.params.action_delay_periods:
            raise ValueError("only the nominal (undelayed) set-point line is modelled")
        # the same plant, controller model, scaling and clocks as EpisodePlant (which checks
        # that the clocks divide each other)
        ep = EpisodePlant(s, self.params)
        self._diagram, self._diagram_ad, self._plant_name = ep.diagram, ep.diagram_ad, \
            ep.plant_name
        self.x0, self._select = ep.x0, ep.select
        self.finger_mass_matrix, self.finger_gravity = ep.mass_matrix, ep.gravity
        self.scaling, self.home = ep.scaling, ep.home
        self.dt, self.period, self.env_step = ep.dt, ep.period, ep.env_step
        self.n_env_steps = int(round(self.config.horizon / self.env_step))
        self.n_periods = int(round(self.config.horizon / self.period))
        ratio = self.config.horizon / self.env_step
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(f"horizon/episode.step = {ratio} must be an integer")

    # -- set-points ------------------------------------------------------------------------

    def setpoints(self, theta: Any) -> list[tuple[Any, Any]]:
        """Set-point of each controller period (float or AutoDiffXd), clamped like actions.

        Period ``j`` commands the piecewise-linear knot path at ``t = j * period``.
        """
        knots = [tuple(self.home)] + [(theta[2 * k], theta[2 * k + 1])
                                      for k in range(len(theta) // 2)]
        seg = self.config.horizon / (len(knots) - 1)
        lo, hi = self.scaling.low, self.scaling.high
        out = []
        for j in range(self.n_periods):
            t = j * self.period
            i = min(int(t / seg), len(knots) - 2)
            w = (t - i * seg) / seg
            (x0, z0), (x1, z1) = knots[i], knots[i + 1]
            out.append((_clamp(x0 * (1 - w) + x1 * w, lo[0], hi[0]),
                        _clamp(z0 * (1 - w) + z1 * w, lo[1], hi[1])))
        return out

    def env_setpoints(self, theta: Array) -> Array:
        """The same path sampled once per env step (``(N, 2)``, held for the step) - what an
        agent calling ``env.step`` would command."""
        sp = np.array([(float(x), float(z)) for x, z in self.setpoints(np.asarray(theta))])
        per = int(round(self.env_step / self.period))
        return sp[::per]

    # -- rollouts --------------------------------------------------------------------------

    def rollout(self, setpoints: list[tuple[Any, Any]], autodiff: bool = False,
                trace: bool = False) -> Rollout:
        """Simulate the plant under the station's controller for the given set-points.

        ``setpoints``: one ``(x, z)`` per controller period (floats, or AutoDiffXd with
        ``autodiff``). Mirrors the station: the zero-order hold delivers period ``j``'s
        set-point to the plant steps after ``t = j * period`` (before that: the home position,
        which ``env.reset`` puts in the hold). Rewards are taken at every multiple of the env
        step. ``trace``: also keep the state after every plant step (``Rollout.trace``).
        """
        from pydrake.autodiffutils import AutoDiffXd
        from pydrake.systems.analysis import Simulator_

        reward = self.task.reward

        diagram = self._diagram_ad if autodiff else self._diagram
        plant = diagram.GetSubsystemByName(self._plant_name)
        ctx = diagram.CreateDefaultContext()
        pctx = plant.GetMyMutableContextFromRoot(ctx)
        if autodiff:
            # Seed every state and the initial hold with zero derivatives of the full size:
            # if the first discrete update sees no derivatives at all, Drake (1.51, SAP)
            # drops the input's derivatives in every later step too (checked: the state's
            # gradient then stays empty).
            nd = max(max(np.size(c.derivatives()) for c in sp) for sp in setpoints)

            def T(v: float) -> Any:
                return AutoDiffXd(v, np.zeros(nd))
        else:
            T = float
        # the float plant's default state (the joints' defaults set by add_world:
        # finger at home, box at params.box_x / box_theta, at rest); ToAutoDiffXd() does not
        # carry the joint defaults over, so set it explicitly
        plant.SetPositionsAndVelocities(pctx, np.array([T(v) for v in self.x0]))
        sim = Simulator_[AutoDiffXd if autodiff else float](diagram, ctx)
        sim.Initialize()
        port = plant.get_actuation_input_port()
        M, tau_g = self.finger_mass_matrix, self.finger_gravity
        kp, kd = self.params.kp, self.params.kd
        sel = self._select
        steps_per_period = int(round(self.period / self.dt))
        steps_per_env = int(round(self.env_step / self.dt))
        n_steps = len(setpoints) * steps_per_period
        held = (T(self.home[0]), T(self.home[1]))

        def observe() -> Any:
            return np.asarray(plant.GetPositionsAndVelocities(pctx))[sel]

        x = observe()
        states, targets, rewards, steps = [x], [], [], [x]
        for k in range(n_steps):
            j = -(-k // steps_per_period) - 1  # last period that started strictly before t_k
            sp = held if j < 0 else setpoints[j]
            q, v = x[self._q], x[self._v]
            e = np.array([sp[0] - q[0], sp[1] - q[1]])
            u = M @ (kp * e - kd * v) - tau_g
            port.FixValue(pctx, u)
            sim.AdvanceTo((k + 1) * self.dt)
            x = observe()
            if trace:
                steps.append(x)
            if (k + 1) % steps_per_env == 0:
                target = setpoints[(k + 1) // steps_per_period - 1]  # commanded this env step
                if autodiff:
                    r = _reward_autodiff(x, np.array(target), self.layout)
                    ref = float(reward(np.array([v.value() for v in x]),
                                       np.array([v.value() for v in target])))
                    if abs(r.value() - ref) > 1e-9 * max(1.0, abs(ref)):
                        raise RuntimeError("the task's reward changed: update "
                                           f"_reward_autodiff ({r.value()} != {ref})")
                else:
                    r = float(reward(x, np.array(target, dtype=float)))
                states.append(x)
                targets.append(target)
                rewards.append(r)
        return Rollout(np.array(states), np.array(targets), np.array(rewards),
                       sum(rewards[1:], rewards[0]) if rewards else 0.0,
                       np.array(steps) if trace else None)

    def cost(self, theta: Array) -> float:
        """``f(theta) = -return`` from a float rollout."""
        return -float(self.rollout(self.setpoints(np.asarray(theta, dtype=np.float64))).ret)

    def cost_and_grad(self, theta: Array) -> tuple[float, Array]:
        """``f(theta)`` and ``grad f(theta)`` from one AutoDiffXd rollout."""
        f, g, _ = self.evaluate(theta)
        return f, g

    def evaluate(self, theta: Array) -> tuple[float, Array, bool]:
        """One AutoDiffXd rollout: ``f(theta)``, ``grad f(theta)`` and whether the box stands
        at the end (the task's ``is_success``)."""
        from pydrake.autodiffutils import InitializeAutoDiff

        th = InitializeAutoDiff(np.asarray(theta, dtype=np.float64)).ravel()
        ro = self.rollout(self.setpoints(th), autodiff=True)
        g = np.asarray(ro.ret.derivatives(), dtype=np.float64)
        if g.size == 0:  # nothing depended on theta
            g = np.zeros(th.size)
        final = np.array([v.value() for v in ro.states[-1]])
        return -float(ro.ret.value()), -g, self._success(final)

    def final_state(self, theta: Array) -> Array:
        """Final state (10,) of a float rollout, observation layout (for inspection)."""
        return self.rollout(self.setpoints(np.asarray(theta, dtype=np.float64))).states[-1]

    def objective(self) -> Objective:
        """Batched :class:`Objective` (value: float rollouts; grad: AutoDiffXd rollouts)."""
        d = self.config.theta0.size

        def value(x: Array) -> Array:
            return np.array([self.cost(r) for r in x])

        def grad(x: Array) -> Array:
            return np.array([self.cost_and_grad(r)[1] for r in x]).reshape(-1, d)

        return Objective("boxflip", d, value, grad)

    # -- the station check -----------------------------------------------------------------

    def check_against_station(self, theta: Array) -> dict[str, Any]:
        """Drive ``fingergym.make_env(randomize=False)`` with the path (one set-point per env
        step, ``env.step(env.scaling.to_action(target))``) and compare with :meth:`rollout`.

        Two comparisons, max abs differences over all env steps:

        * ``grid``: the rollout as the study runs it, set-points switching and states read at
          exact multiples of the env step;
        * ``env_clock``: the same rollout with set-points switched and states read where
          ``env.step`` really puts them. ``DrakeGymEnv.step`` advances to ``t + step`` with
          ``t`` accumulated in floating point (``0.1 + 0.1 + 0.1 = 0.30000000000000004``);
          when that lands a hair past a plant/hold sample time, the sample at that time
          (e.g. ``t = 0.3``) is processed inside the step, so the env returns the state one
          plant step later and the next action reaches the hold one period later.
        """
        import fingergym

        per = int(round(self.env_step / self.period))
        env = fingergym.make_env(self.scenario, randomize=False)
        try:
            env.reset(seed=0)
            actions = [env.scaling.to_action(t).astype(np.float32)
                       for t in self.env_setpoints(theta)]
            s_env, r_env, t_env = [env.true_state()], [], [env.simulator.get_context().get_time()]
            for a in actions:
                _, r, _, _, _ = env.step(a)
                s_env.append(env.true_state())
                r_env.append(r)
                t_env.append(env.simulator.get_context().get_time())
        finally:
            env.close()
        s_env, r_env = np.array(s_env), np.array(r_env)
        targets = [env.scaling.to_target(a) for a in actions]  # what the station commands

        def diffs(states: Array, rewards: Array) -> dict[str, float]:
            d = np.abs(states - s_env)
            lay = self.layout
            return {"box_position": float(d[:, lay["box_q"]].max()),
                    "finger_position": float(d[:, lay["robot_q"]].max()),
                    "box_velocity": float(d[:, lay["box_v"]].max()),
                    "finger_velocity": float(d[:, lay["robot_v"]].max()),
                    "reward": float(np.abs(rewards - r_env).max()),
                    "return": float(abs(rewards.sum() - r_env.sum()))}

        grid = self.rollout([tuple(t) for t in np.repeat(targets, per, axis=0)])
        # the env's clock: hold sample j (at j * period) falls in env step i when
        # t_env[i-1] <= j * period < t_env[i]; plant samples likewise
        reward = self.task.reward

        n_per = sum(1 for j in range(len(targets) * per + 2) if j * self.period < t_env[-1])
        cmds = [tuple(targets[next(i for i in range(1, len(t_env))
                                   if j * self.period < t_env[i]) - 1]) for j in range(n_per)]
        traced = self.rollout(cmds, trace=True).trace
        n_plant = [sum(1 for k in range(len(traced)) if k * self.dt < t) for t in t_env]
        s_clock = traced[n_plant]
        r_clock = np.array([float(reward(s_clock[i + 1], targets[i]))
                            for i in range(len(targets))])
        return {"env_steps": len(actions), "grid": diffs(grid.states, grid.rewards),
                "env_clock": diffs(s_clock, r_clock),
                "late_env_steps": [i for i, t in enumerate(t_env)
                                   if n_plant[i] != round(t / self.dt)],
                "return_env": float(r_env.sum()), "return_rollout": float(grid.ret),
                "success_env": self._success(s_env[-1]),
                "success_rollout": self._success(grid.states[-1])}

    def _success(self, state: Array) -> bool:
        return bool(self.task.is_success(np.asarray(state, dtype=np.float64)))


# ---------------------------------------------------------------------------------------------
# the study


def _chunks_alpha(z: Array, g: Array, n: int, gamma: float, lipschitz: float,
                  confidence: float) -> dict[str, float]:
    """Apply the AoBG rule to disjoint chunks of ``n`` shared samples: mean alpha etc."""
    m = (z.shape[0] // n) * n
    if m == 0:
        return {"n": n, "chunks": 0}
    zc = z[:m].reshape(-1, n, z.shape[1])
    gc = g[:m].reshape(-1, n, g.shape[1])
    zm, gm = zc.mean(axis=1), gc.mean(axis=1)
    v0 = np.einsum("bnd,bnd->b", zc - zm[:, None], zc - zm[:, None]) / (n - 1)
    v1 = np.einsum("bnd,bnd->b", gc - gm[:, None], gc - gm[:, None]) / (n - 1)
    eps = bernstein_eps(v0, n, z.shape[1], lipschitz, confidence)
    alpha = choose_alpha(gm, zm, v1, v0, eps, gamma)
    alpha_bar = v0 / np.maximum(v0 + v1, 1e-300)
    return {"n": n, "chunks": int(zc.shape[0]), "alpha_mean": float(alpha.mean()),
            "alpha_bar_mean": float(alpha_bar.mean()),
            "alpha_zero_frac": float(np.mean(alpha == 0.0)), "eps_mean": float(eps.mean()),
            "bias_hat_mean": float(np.linalg.norm(gm - zm, axis=1).mean())}


def _quantiles(x: Array) -> dict[str, float]:
    return dict(zip(("q10", "q50", "q90", "max"),
                    np.quantile(x, [0.1, 0.5, 0.9, 1.0]).tolist(), strict=True))


FD_STEP = 1e-6         # central differences that must match AutoDiffXd
FD_STEP_COARSE = 1e-3  # the same on (a fraction of) the smoothing scale


def run_boxflip_study(reps: int | None = None, seed: int = 0, quick: bool = False,
                      progress: bool = True, sigmas: tuple[float, ...] = SIGMAS,
                      gamma: float | None = None, confidence: float = 0.95,
                      config: BoxFlipConfig | None = None) -> dict[str, Any]:
    """ZoBG vs FoBG on the box flip-up at the nominal knots, for each ``sigma``.

    For each sigma, ``reps`` perturbations ``w_i`` are drawn; one AutoDiffXd rollout per
    sample gives both ``f(theta0 + w_i)`` (ZoBG summand) and ``grad f`` (FoBG summand).
    Reports pooled means (FoBG - ZoBG = FoBG's bias, ZoBG being unbiased), per-sample
    variances, the implied std of N-sample estimates and the alpha the AoBG rule picks.
    Also checks the rollout against the env (:meth:`BoxFlip.check_against_station`) and
    AutoDiffXd against central differences at the nominal.
    """
    from tqdm import tqdm

    reps = reps if reps is not None else (24 if quick else 200)
    t_build = time.perf_counter()
    flip = BoxFlip(config or BoxFlipConfig())
    build_s = time.perf_counter() - t_build
    theta0 = flip.config.theta0
    d = theta0.size
    rng = np.random.default_rng(seed)

    t0 = time.perf_counter()
    station = flip.check_against_station(theta0)
    station_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    f0 = flip.cost(theta0)
    float_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    f0_ad, g0, ok0 = flip.evaluate(theta0)
    ad_s = time.perf_counter() - t0

    # AutoDiffXd vs central finite differences at the nominal: with a small step the two must
    # agree if AutoDiffXd differentiates the simulated map; the coarse step shows how rough
    # the map is on a fraction of the smoothing scale.
    def central(h: float) -> Array:
        return np.array([(flip.cost(theta0 + h * e) - flip.cost(theta0 - h * e)) / (2 * h)
                         for e in np.eye(d)])

    fd_fine, fd_coarse = central(FD_STEP), central(FD_STEP_COARSE)
    final = flip.final_state(theta0)
    s = flip.scenario
    result: dict[str, Any] = {
        "config": {"knots": [list(k) for k in flip.config.knots],
                   "horizon": flip.config.horizon, "scenario": s.source,
                   "plant_time_step": flip.dt, "controller_period": flip.period,
                   "env_step": flip.env_step, "contact": f"{s.contact.model}/"
                   f"{s.contact.approximation}", "kp": flip.params.kp, "kd": flip.params.kd,
                   "objective": "-(sum of the flip-up task's reward over env steps)"},
        "dim": d, "reps": reps, "confidence": confidence,
        "station_check": station,
        "nominal": {"cost": f0, "cost_autodiff": f0_ad, "stood_up": ok0,
                    "grad_autodiff": g0.tolist(),
                    "grad_central_fd": fd_fine.tolist(), "fd_step": FD_STEP,
                    "grad_central_fd_coarse": fd_coarse.tolist(),
                    "fd_step_coarse": FD_STEP_COARSE,
                    "box_final": {"x": float(final[0]), "z": float(final[1]),
                                  "theta": float(final[2]), "omega": float(final[7])}},
        "seconds": {"build": build_s, "station_check": station_s, "float_rollout": float_s,
                    "autodiff_rollout": ad_s},
        "sigmas": [],
    }
    bar = tqdm(total=reps * len(sigmas), desc="boxflip rollouts", disable=not progress,
               leave=False)
    t_study = time.perf_counter()
    for sigma in sigmas:
        w = rng.normal(0.0, sigma, size=(reps, d))
        f = np.empty(reps)
        g = np.empty((reps, d))
        stood = np.zeros(reps, dtype=bool)
        for i in range(reps):
            f[i], g[i], stood[i] = flip.evaluate(theta0 + w[i])
            bar.update()
        zs = (f - f0)[:, None] * w / sigma**2
        zm, gm = zs.mean(axis=0), g.mean(axis=0)
        z_se = zs.std(axis=0, ddof=1) / math.sqrt(reps)
        g_se = g.std(axis=0, ddof=1) / math.sqrt(reps)
        diff = gm - zm
        diff_se = (zs - g).std(axis=0, ddof=1) / math.sqrt(reps)  # paired samples
        var0 = float(np.sum(zs.var(axis=0, ddof=1)))
        var1 = float(np.sum(g.var(axis=0, ddof=1)))
        spread = float(np.max(np.abs(f - f0)))
        lipschitz = 2.0 * spread / sigma
        gam = gamma if gamma is not None else 0.25 * float(np.linalg.norm(zm))
        result["sigmas"].append({
            "sigma": sigma, "cost_mean": float(f.mean()), "cost_min": float(f.min()),
            "cost_max": float(f.max()), "stood_up_frac": float(stood.mean()),
            "zobg_mean": zm.tolist(), "zobg_se": z_se.tolist(),
            "fobg_mean": gm.tolist(), "fobg_se": g_se.tolist(),
            "fobg_minus_zobg": diff.tolist(), "fobg_minus_zobg_se": diff_se.tolist(),
            "fobg_bias_norm": float(np.linalg.norm(diff)),
            "fobg_bias_z": float(np.max(np.abs(diff) / np.maximum(diff_se, 1e-300))),
            "zobg_norm": float(np.linalg.norm(zm)), "fobg_norm": float(np.linalg.norm(gm)),
            "cosine_fobg_zobg": float(zm @ gm / max(np.linalg.norm(zm) * np.linalg.norm(gm),
                                                      1e-300)),
            "var_zero": var0, "var_first": var1,
            "std_n10": {"zobg": math.sqrt(var0 / 10), "fobg": math.sqrt(var1 / 10)},
            "std_n50": {"zobg": math.sqrt(var0 / 50), "fobg": math.sqrt(var1 / 50)},
            "fobg_sample_norm_quantiles": _quantiles(np.linalg.norm(g, axis=1)),
            "zobg_sample_norm_quantiles": _quantiles(np.linalg.norm(zs, axis=1)),
            "aobg": {"gamma": gam, "lipschitz": lipschitz, "spread": spread,
                     "rule": [_chunks_alpha(zs, g, n, gam, lipschitz, confidence)
                              for n in (10, 50) if n <= reps]},
        })
    bar.close()
    result["seconds"]["study"] = time.perf_counter() - t_study
    result["seconds"]["per_autodiff_rollout"] = result["seconds"]["study"] / (
        reps * len(sigmas))
    return result


def format_report(res: dict[str, Any]) -> str:
    """Readable summary of :func:`run_boxflip_study`."""
    nom, cfg, st = res["nominal"], res["config"], res["station_check"]
    grid, clock = st["grid"], st["env_clock"]
    lines = [
        f"Box flip-up on the env's plant (fingergym.sim.plant, {cfg['contact']} contact, "
        f"dt={cfg['plant_time_step']}s, horizon {cfg['horizon']}s, d={res['dim']} knot "
        f"coordinates, {res['reps']} samples per sigma; f = -return)",
        f"rollout vs make_env ({st['env_steps']} env steps): on the env's clock max |diff| "
        f"{max(clock.values()):.1e}; on the exact grid positions box "
        f"{grid['box_position']:.1e} / finger {grid['finger_position']:.1e}, velocities "
        f"{grid['box_velocity']:.1e} / {grid['finger_velocity']:.1e}, return "
        f"{grid['return']:.1e} (env steps {st['late_env_steps'][:3]}... end 1 plant step "
        "late in the env)",
        f"nominal return {-nom['cost']:.3f}, stood up: {nom['stood_up']}; final box theta "
        f"{nom['box_final']['theta']:.3f} rad",
        "AutoDiffXd grad        " + np.array2string(np.array(nom["grad_autodiff"]),
                                                      precision=4),
        f"central FD, h={nom['fd_step']:.0e}    " + np.array2string(
            np.array(nom["grad_central_fd"]), precision=4),
        f"central FD, h={nom['fd_step_coarse']:.0e}    " + np.array2string(
            np.array(nom["grad_central_fd_coarse"]), precision=4),
    ]
    for s in res["sigmas"]:
        rule = ", ".join(f"N={r['n']}: alpha {r['alpha_mean']:.2f} "
                         f"(alpha=0 in {r['alpha_zero_frac']:.0%}; inverse-variance optimum "
                         f"{r['alpha_bar_mean']:.1e})" for r in s["aobg"]["rule"]
                         if r.get("chunks"))
        fq, zq = s["fobg_sample_norm_quantiles"], s["zobg_sample_norm_quantiles"]
        lines += [
            f"sigma={s['sigma']}: cost {s['cost_mean']:.3f} [{s['cost_min']:.3f}, "
            f"{s['cost_max']:.3f}], stood up {s['stood_up_frac']:.0%}",
            f"  |ZoBG|={s['zobg_norm']:.3g}  |FoBG|={s['fobg_norm']:.3g}  "
            f"|FoBG-ZoBG|={s['fobg_bias_norm']:.3g} (max z-score {s['fobg_bias_z']:.1f})  "
            f"cos={s['cosine_fobg_zobg']:.2f}",
            f"  std of one N=50 estimate: ZoBG {s['std_n50']['zobg']:.3g}, "
            f"FoBG {s['std_n50']['fobg']:.3g}",
            f"  per-sample |grad| median/max: ZoBG {zq['q50']:.3g}/{zq['max']:.3g}, "
            f"FoBG {fq['q50']:.3g}/{fq['max']:.3g}",
            f"  AoBG rule (gamma={s['aobg']['gamma']:.3g}, L={s['aobg']['lipschitz']:.3g}): "
            + rule,
        ]
    sec = res["seconds"]
    lines.append(f"time: float rollout {sec['float_rollout']:.3f}s, AutoDiffXd rollout "
                 f"{sec['per_autodiff_rollout']:.3f}s, station check "
                 f"{sec['station_check']:.2f}s, study {sec['study']:.1f}s")
    return "\n".join(lines)

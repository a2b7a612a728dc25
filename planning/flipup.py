"""The box flip-up as a planning problem: subgoals, initial guesses, open- and closed-loop runs.

The planner acts on the (true or observed) state of ``fingergym/BoxFlipUp-v0`` and commands
finger targets [m]; :func:`run_episode` sends them as the env's actions through the env's own
:class:`~fingergym.scaling.ActionScaling` (``env.scaling.to_action``). One plan step lasts
``hold`` env steps (the quasi-dynamic model assumes the finger's PD settles within a step).

What the planner is told about the task (:class:`FlipUpTask`): the goal -- the box standing on
its short edge against the nearer bin wall -- and three subgoals on the way, each with a
contact-seeking initial guess for the iLQR. The finger motions come out of the smoothed iLQR.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from fingergym.scaling import ActionScaling
from fingergym.scenario import Scenario
from fingergym.sim.params import nominal_params
from fingergym.tasks.box_flipup import angle_from_vertical

from .ilqr import Cost, PlanConfig, SmoothedILQR
from .model import QuasiDynamicModel


@dataclass
class FlipUpConfig:
    hold: int = 2                   # env steps per plan step
    horizon: int = 10               # plan steps per (re)plan
    kappa: float = 200.0            # barrier smoothing of the planning model
    first_iterations: int = 10      # iLQR iterations when a phase starts
    replan_iterations: int = 3      # per re-plan, warm-started
    effort: float = 0.1             # [1/m^2] on u - q_a
    # Friction of the planning model: "low" plans with the least friction the scenario's
    # randomization may draw (a push that lifts by friction then works on every draw);
    # "nominal" uses contact.friction; a number sets it.
    friction: str | float = "low"
    press: float = 0.12             # [m] how far into the box the push guess presses
    open_loop_steps: int = 50       # plan steps of an open-loop plan (x hold = 100 env steps)


PHASES = ("approach", "push", "flip")


@dataclass
class Subgoal:
    """A phase's goal configuration (5,), diagonal weights (5,) and initial guess (T, 2)."""

    phase: str
    goal: np.ndarray
    W: np.ndarray
    W_final: np.ndarray
    guess: np.ndarray


def flip_goal(scenario: Scenario, q: np.ndarray) -> tuple[np.ndarray, int]:
    """Goal configuration (5,) and wall side (-1 left, +1 right) for a box at ``q``.

    The box stands on its short edge against the nearer wall; the side of the box facing
    the room lifts, so theta turns by +pi/2 at the left wall and -pi/2 at the right one
    (continued from the nearest multiple of pi, i.e. the way the box lies now).
    """
    walls = scenario.bin.wall_x
    side = -1 if abs(q[0] - walls[0]) <= abs(q[0] - walls[1]) else 1
    wall = walls[0] if side < 0 else walls[1]
    theta = np.round(q[2] / np.pi) * np.pi - side * np.pi / 2
    goal = np.array([wall - side * 0.5 * scenario.box.thickness,
                     scenario.bin.floor_z + 0.5 * scenario.box.length, theta, 0.0, 0.0])
    return goal, side


class FlipUpTask:
    """What the planner knows of the flip-up: the goal and three subgoals (phases).

    - approach: the finger to the box's far side, low (a finger goal; the barrier keeps it
      out of the box);
    - push: the flat box to the nearer wall (a box-position goal);
    - flip: the box standing on its short edge at that wall (a box-pose goal).
    The phase is read off the state at every re-plan, so closed loop falls back when the box
    or the finger slips. Motions within a phase come from the smoothed iLQR.
    """

    def __init__(self, scenario: Scenario, scaling: ActionScaling, config: FlipUpConfig):
        self.s = scenario
        self.scaling = scaling
        self.cfg = config

    def setup(self, q: np.ndarray) -> None:
        self.goal, self.side = flip_goal(self.s, q)
        self.wall = self.s.bin.wall_x[0 if self.side < 0 else 1]
        self.flat_at_wall = self.wall - self.side * (0.5 * self.s.box.length + 0.002)

    def _far(self, q: np.ndarray) -> np.ndarray:
        r = self.s.plugins()[1].radius
        return np.array([q[0] - self.side * (0.5 * self.s.box.length + r + 0.01),
                         self.s.bin.floor_z + r + 0.01])

    def phase(self, q: np.ndarray) -> str:
        s = self.s
        tilt = abs(abs(float(angle_from_vertical(q[2]))) - np.pi / 2)  # 0 when flat
        if abs(q[0] - self.flat_at_wall) < 0.015 or tilt > 0.1:
            return "flip"
        behind = self.side * (q[3] - q[0]) < -0.5 * s.box.length  # finger on the far side
        low = q[4] < s.bin.floor_z + s.box.thickness
        return "push" if behind and low else "approach"

    def subgoal(self, q: np.ndarray, phase: str, steps: int) -> Subgoal:
        s, side = self.s, self.side
        r = s.plugins()[1].radius
        zero = np.zeros(3)
        if phase == "approach":
            far = self._far(q)
            top = q[1] + 0.5 * s.box.length + r + 0.03  # clears the box in any orientation
            over = [np.array([q[3], max(q[4], top)]), np.array([far[0], max(q[4], top)])]
            guess = [over[0], over[1], over[1]] + [far] * steps
            return Subgoal(phase, np.r_[q[:3], far], np.r_[zero, 100.0, 100.0],
                           np.r_[zero, 3000.0, 3000.0],
                           self.scaling.clamp_target(np.asarray(guess[:steps])))
        if phase == "push":
            x0 = q[3] + side * self.cfg.press
            guess = [np.array([x0 + side * 0.04 * k, s.bin.floor_z + r + 0.03])
                     for k in range(steps)]
            return Subgoal(phase, np.r_[self.flat_at_wall, q[1], q[2], 0.0, 0.0],
                           np.array([100.0, 100.0, 1.0, 0, 0]),
                           np.array([3000.0, 3000.0, 30.0, 0, 0]),
                           self.scaling.clamp_target(np.asarray(guess)))
        # flip: the guess presses up and towards the wall
        guess = np.tile([self.wall - side * 0.065, s.bin.floor_z + 0.1], (steps, 1))
        return Subgoal(phase, self.goal, np.array([1.0, 1.0, 0.3, 0, 0]),
                       np.array([30.0, 30.0, 30.0, 0, 0]), self.scaling.clamp_target(guess))


@dataclass
class FlipUpPlanner:
    """Smoothed-iLQR planner for the flip-up; ``reset(q)`` then ``target(q)`` per env step."""

    scenario: Scenario
    config: FlipUpConfig = field(default_factory=FlipUpConfig)

    def __post_init__(self) -> None:
        cfg = self.config
        params = nominal_params(self.scenario)
        if cfg.friction != "nominal":
            mu = (self.scenario.randomization.friction[0] if cfg.friction == "low"
                  else float(cfg.friction))
            params = replace(params, friction=mu)
        self.model = QuasiDynamicModel(self.scenario, h=cfg.hold * self.scenario.episode.step,
                                       params=params)
        self.scaling = self.model.scaling
        self.task = FlipUpTask(self.scenario, self.scaling, cfg)
        self.plan_seconds: list[float] = []
        self.phases: list[str] = []
        self._us: np.ndarray | None = None
        self._phase = ""
        self._k = 0
        self._u: np.ndarray | None = None

    def _ilqr(self, sub: Subgoal) -> SmoothedILQR:
        c = self.config
        return SmoothedILQR(self.model, Cost(sub.goal, sub.W, sub.W_final, c.effort),
                            PlanConfig(horizon=len(sub.guess), kappas=(c.kappa,)))

    def reset(self, q: np.ndarray) -> None:
        """Start an episode at ``q`` (5,)."""
        self.task.setup(np.asarray(q, dtype=float)[:5])
        self._phase = ""
        self._k = 0
        self.plan_seconds = []
        self.phases = []

    def replan(self, q: np.ndarray, iterations: int | None = None):
        """One (re)plan from ``q``; returns the :class:`~fingergym.planning.ilqr.Plan`. A new
        phase starts from its initial guess, a continuing one from the shifted last plan."""
        c = self.config
        q = self.model.project(np.asarray(q, dtype=float)[:5])
        phase = self.task.phase(q)
        sub = self.task.subgoal(q, phase, c.horizon)
        fresh = phase != self._phase
        us0 = sub.guess if fresh else self._us
        it = iterations or (c.first_iterations if fresh else c.replan_iterations)
        plan = self._ilqr(sub).plan(q, us0, iterations=it)
        self._phase = phase
        self.phases.append(phase)
        self.plan_seconds.append(plan.seconds)
        self._us = np.r_[plan.us[1:], plan.us[-1:]]
        return plan

    def target(self, q: np.ndarray) -> np.ndarray:
        """Closed loop: re-plan every ``hold`` env steps from ``q``; the finger target [m]."""
        if self._k % self.config.hold == 0:
            self._u = self.replan(q).us[0]
        self._k += 1
        return self._u

    def plan_open_loop(self, q: np.ndarray) -> np.ndarray:
        """A whole open-loop plan from ``q``: the same receding-horizon planning run on the
        planning model's own prediction instead of the env; finger targets
        (open_loop_steps, 2). Its wall time is the one entry of ``plan_seconds``."""
        self.reset(q)
        t0 = time.perf_counter()
        q = np.asarray(q, dtype=float)[:5]
        us = []
        for _ in range(self.config.open_loop_steps):
            u = self.replan(q).us[0]
            us.append(u)
            q = self.model.step_barrier(q, u, self.config.kappa).q_next
        self.plan_seconds = [time.perf_counter() - t0]
        return np.asarray(us)



@dataclass
class EpisodeResult:
    seed: int
    success: bool
    angle_from_vertical: float
    box_omega: float
    plan_seconds: list[float]
    states: np.ndarray     # (steps + 1, 10) true states
    targets: np.ndarray    # (steps, 2) commanded finger targets [m]
    observations: np.ndarray  # (steps + 1, 10) what the env returned
    actions: np.ndarray    # (steps, 2) what was sent
    rewards: np.ndarray    # (steps,) the env's rewards


def run_episode(env, planner: FlipUpPlanner, seed: int, closed_loop: bool = True,
                observe: str = "obs") -> EpisodeResult:
    """One episode of ``env`` (``fingergym/BoxFlipUp-v0``, or its ``make_env``) driven by the
    planner; ``observe`` = ``"obs"`` plans from the env's observation, ``"true"`` from the
    true state. Actions are ``env.scaling.to_action(target)``."""
    base = env.unwrapped
    obs, info = env.reset(seed=seed)
    state = base.true_state()
    first = np.asarray(obs if observe == "obs" else state, dtype=float)
    planner.reset(first)
    plan_us = None if closed_loop else planner.plan_open_loop(first)
    hold = planner.config.hold
    states, obs_l, targets, actions, rewards = [state.copy()], [np.asarray(obs)], [], [], []
    k = 0
    done = False
    while not done:
        q = np.asarray(obs if observe == "obs" else base.true_state(), dtype=float)
        if closed_loop:
            target = planner.target(q)
        else:
            target = plan_us[min(k // hold, len(plan_us) - 1)]
        action = base.scaling.to_action(target).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(float(reward))
        done = terminated or truncated
        states.append(base.true_state().copy())
        obs_l.append(np.asarray(obs))
        targets.append(np.asarray(target))
        actions.append(action)
        k += 1
    final = states[-1]
    return EpisodeResult(seed, bool(base.task.is_success(final)),
                         float(info["angle_from_vertical"]), float(info["box_omega"]),
                         list(planner.plan_seconds), np.asarray(states), np.asarray(targets),
                         np.asarray(obs_l), np.asarray(actions), np.asarray(rewards))

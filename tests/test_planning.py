"""Planning through contact (fingergym.planning): the quasi-dynamic model, its smoothing, iLQR.

Fast checks only; the studies (success rates, bias/variance) are `fingergym bench planning`.
"""

from __future__ import annotations

import numpy as np
import pytest

from fingergym.planning.ilqr import Cost, PlanConfig, SmoothedILQR
from fingergym.planning.model import QuasiDynamicModel, solve_exact
from fingergym.planning.onedim import Pusher1D, compare, t2_quadrature
from fingergym.scenario import load_scenario


@pytest.fixture(scope="module")
def model() -> QuasiDynamicModel:
    return QuasiDynamicModel(load_scenario(), h=0.2)


def _pushing(model: QuasiDynamicModel) -> tuple[np.ndarray, np.ndarray]:
    """Finger 2 mm right of a tilted box's right face (no penetration), pushing up-left."""
    s = model.scenario
    q = np.array([0.0, 0.5 * s.box.thickness + 0.008, 0.05,
                  0.5 * s.box.length + s.plugins()[1].radius + 0.002, 0.03])
    return q, np.array([-0.1, 0.06])


@pytest.mark.parametrize("kappa", [100.0, 1000.0])
def test_barrier_gradients_match_finite_differences(model, kappa):
    q, u = _pushing(model)
    _, A, B = model.linearize(q, u, kappa, curvature=True)
    eps = 1e-6

    def f(qq, uu):
        return model.step_barrier(qq, uu, kappa).q_next

    B_fd = np.stack([(f(q, u + eps * e) - f(q, u - eps * e)) / (2 * eps) for e in np.eye(2)], 1)
    A_fd = np.stack([(f(q + eps * e, u) - f(q - eps * e, u)) / (2 * eps) for e in np.eye(5)], 1)
    assert np.abs(B).max() > 0.1  # the box responds: the check is not vacuous
    np.testing.assert_allclose(B, B_fd, atol=1e-6)
    np.testing.assert_allclose(A, A_fd, atol=1e-5)
    # Without the Jacobians' curvature A is only approximate (the documented default).
    _, A0, _ = model.linearize(q, u, kappa)
    assert np.abs(A0 - A_fd).max() > 1e-3


def test_exact_step_satisfies_kkt_and_cone_constraints(model):
    q, u = _pushing(model)
    p = model.problem(q, u)
    dq, lam = solve_exact(p)
    slack = p.G @ dq + p.g0
    scale = np.abs(lam).max()
    assert scale > 0.1  # in contact
    assert slack.min() > -1e-6                        # dual cones (and rotation limit)
    assert lam.min() > -1e-6 * scale                  # impulses on the cone edges >= 0
    assert np.abs(lam * slack).max() < 1e-6 * scale   # complementarity
    np.testing.assert_allclose(p.Q @ dq + p.b, p.G.T @ lam, atol=1e-5 * scale)  # stationarity
    # Each contact's impulse lies in its friction cone: |lambda_t| <= mu lambda_n.
    m = len(p.contacts.phi)
    lam_n = lam[:m] + lam[m:2 * m]
    lam_t = p.contacts.mu * (lam[:m] - lam[m:2 * m])
    assert np.all(np.abs(lam_t) <= p.contacts.mu * lam_n + 1e-6 * scale)


def test_barrier_step_tends_to_exact_step(model):
    q, u = _pushing(model)
    exact = model.step(q, u).dq
    errs = [np.abs(model.step_barrier(q, u, k).dq - exact).max() for k in (1e2, 1e4, 1e6)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-4


def test_one_dim_barrier_equals_student_t_smoothing():
    pusher = Pusher1D(m=1.0, k=100.0, h=0.1)
    kappa = 1e4
    res = compare(pusher, kappa, samples=20_000, solver_samples=20)
    assert res["exact_closed_vs_clarabel_max_err"] < 1e-4
    for row in res["rows"]:
        assert row["barrier_newton"] == pytest.approx(row["barrier_closed"], abs=1e-9)
        assert row["barrier_newton"] == pytest.approx(row["t2_quadrature"], rel=1e-3)
    # The matched Gaussian does not reproduce it (light tails): far from contact it is ~0.
    far = res["rows"][0]
    assert far["gaussian"] < 0.1 * far["barrier_newton"]
    # Another kappa, another x: the scale sqrt(delta / 2) is what ties them.
    assert t2_quadrature(pusher, 0.003, 300.0) == pytest.approx(pusher.barrier(0.003, 300.0),
                                                                rel=1e-3)


def test_short_plan_improves_the_objective(model):
    s = model.scenario
    wall = s.bin.wall_x[0]
    bx = wall + 0.5 * s.box.length + 0.002
    q0 = model.flat_q(bx, finger=[bx + 0.5 * s.box.length + s.plugins()[1].radius + 0.002,
                                   0.02])
    goal = np.array([wall + 0.5 * s.box.thickness, 0.5 * s.box.length, np.pi / 2, 0, 0])
    cost = Cost(goal, np.array([1.0, 1.0, 0.3, 0, 0]), np.array([30.0, 30.0, 30.0, 0, 0]), 0.1)
    ilqr = SmoothedILQR(model, cost, PlanConfig(horizon=6, kappas=(200.0,), iterations=3))
    us0 = np.tile([wall + 0.065, 0.1], (6, 1))
    qs0, _, _ = ilqr.rollout(q0, us0, 200.0)
    plan = ilqr.plan(q0, us0)
    assert plan.costs[-1] < cost.total(qs0, us0) - 1.0
    assert plan.qs[-1][2] > qs0[-1][2]  # the box turned further towards standing
    lo, hi = model.scaling.low, model.scaling.high
    assert np.all(plan.us >= lo - 1e-12) and np.all(plan.us <= hi + 1e-12)


def test_planner_expert_acts_through_the_task_action_scaling():
    from fingergym.planning.demos import PlannerExpert

    scenario = load_scenario()
    expert = PlannerExpert(scenario)
    state = np.zeros(10)
    state[:5] = expert.planner.model.flat_q(0.05)
    action = expert(state)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1.0)
    target = expert.scaling.to_target(action)
    np.testing.assert_allclose(target, expert.planner._u, atol=1e-6)
    assert expert.planner.phases == ["approach"]  # far from the box: go to its far side
    # Seen from the box, the finger heads to the side away from the nearer (right) wall.
    assert target[0] < state[0]


def test_bench_planning_help(capsys):
    from fingergym.planning.bench import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "--episodes" in capsys.readouterr().out


def test_warm_start_expert_is_a_config_choice():
    from fingergym.policies.config import config_from_dict, load_train_config
    from fingergym.scenario import ScenarioError

    assert load_train_config().warm_start.expert == "task"
    assert config_from_dict({"warm_start": {"expert": "planner"}}).warm_start.expert == "planner"
    with pytest.raises(ScenarioError, match="warm_start.expert"):
        config_from_dict({"warm_start": {"expert": "oracle"}})
    shipped = load_train_config(load_train_config().source.replace("train.yaml",
                                                                   "train_planner.yaml"))
    assert shipped.warm_start.expert == "planner" and shipped.warm_start.episodes > 0
    # the planner states the flip-up only: another task is refused at load, naming the key
    with pytest.raises(ScenarioError, match="warm_start.expert: planner: .*'gripper_lift'"):
        config_from_dict({"warm_start": {"expert": "planner"},
                          "env": {"scenario": "gripper_lift"}})
    assert config_from_dict({"warm_start": {"expert": "planner", "episodes": 0},
                             "env": {"scenario": "gripper_lift"}}).warm_start.episodes == 0
    # DAgger needs the planner as its labeller
    assert config_from_dict({"warm_start": {"expert": "planner", "dagger_rounds": 2}}
                            ).warm_start.dagger_rounds == 2
    with pytest.raises(ScenarioError, match="warm_start.dagger_rounds: only with .*planner"):
        config_from_dict({"warm_start": {"dagger_rounds": 1}})


def test_planner_demonstrations_are_the_same_from_any_number_of_workers():
    """The warm start plans its demonstrations in parallel; each episode depends on its seed
    only, so two workers return exactly what one does, in seed order."""
    from fingergym.planning.demos import collect_demonstrations

    scenario = load_scenario().replace(**{"episode.time_limit": 2.0})
    n = int(round(2.0 / scenario.episode.step))
    ticks = []
    one = collect_demonstrations(scenario, 3, 1_000_000)
    two = collect_demonstrations(scenario, 3, 1_000_000, workers=2,
                                 progress=lambda steps, ok: ticks.append(steps))
    assert one.obs.shape == (3 * n, 10) and ticks == [n, n, n]
    np.testing.assert_array_equal(one.obs, two.obs)
    np.testing.assert_array_equal(one.expert, two.expert)
    for a, b in zip(one.rewards, two.rewards, strict=True):
        np.testing.assert_array_equal(a, b)
    assert list(one.success) == list(two.success)
    # each row knows its episode (the warm start's successful_only picks rows by it)
    assert one.episode.tolist() == two.episode.tolist() == [0] * n + [1] * n + [2] * n


def test_a_stop_request_during_planner_demonstrations_cancels_the_rest():
    from fingergym.planning.demos import collect_demonstrations

    class Stop(Exception):
        pass

    def stop(steps, ok):
        raise Stop

    scenario = load_scenario().replace(**{"episode.time_limit": 0.4})
    with pytest.raises(Stop):
        collect_demonstrations(scenario, 50, 1_000_000, workers=2, progress=stop)


def test_planner_labels_the_states_of_the_policy_that_drives():
    """DAgger's data: the env is driven by the given policy and each observation is labelled
    with the planner's action there. Driven by the planner itself, that is exactly a planner
    demonstration; driven by a policy that keeps still, the labels still show the planner's
    moves while the success is the still policy's."""
    from fingergym.planning.demos import collect_demonstrations, label_policy_episodes
    from fingergym.planning.flipup import FlipUpPlanner

    scenario = load_scenario().replace(**{"episode.time_limit": 1.0})
    planner = FlipUpPlanner(scenario)

    def plan(obs: np.ndarray) -> np.ndarray:  # the planner as a policy, from the first obs
        if not planner.phases:
            planner.reset(obs)
        return planner.scaling.to_action(planner.target(obs)).astype(np.float32)

    demo = collect_demonstrations(scenario, 1, 1_000_000)
    own = label_policy_episodes(scenario, plan, 1, 1_000_000)
    np.testing.assert_array_equal(own.obs, demo.obs)
    np.testing.assert_allclose(own.expert, demo.expert, atol=1e-6)

    still = label_policy_episodes(scenario, lambda obs: np.zeros(2, np.float32), 1, 1_000_000)
    assert still.obs.shape == demo.obs.shape and still.success == [False]
    assert np.all(np.abs(still.expert) <= 1.0)
    np.testing.assert_allclose(still.expert[0], demo.expert[0], atol=1e-6)  # same start
    finger = [scenario.plugins()[0].observation_layout.index(n) for n in ("finger_x", "finger_z")]
    assert np.ptp(still.obs[:, finger], axis=0).max() < np.ptp(demo.obs[:, finger], axis=0).max()


def test_clone_study_refuses_bad_arguments_in_one_line(capsys):
    """bench/clone_study.py checks its config, task and --by before planning anything."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "clone_study.py"
    spec = importlib.util.spec_from_file_location("clone_study", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for argv, why in [(["--by", "box_colour"], "not an observation element"),
                      (["--set", "warm_start.epochs=-1"], "warm_start.epochs"),
                      (["--set", "env.scenario=gripper_lift"], "plans the box flip-up")]:
        with pytest.raises(SystemExit) as e:
            bench.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert why in err, err


def test_dagger_refits_the_clone_on_the_planner_labels_of_its_own_episodes():
    """warm_start.dagger_rounds: each round the clone drives, the planner labels, the clone is
    refitted on the demonstrations plus every labelled episode so far."""
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from fingergym.env import make_env
    from fingergym.planning.demos import collect_demonstrations
    from fingergym.policies.warmstart import clone, dagger

    scenario = load_scenario().replace(**{"episode.time_limit": 1.0})
    vecnorm = VecNormalize(DummyVecEnv([lambda: make_env(scenario)]))
    model = PPO("MlpPolicy", vecnorm, seed=0, device="cpu", policy_kwargs={"net_arch": [16]})
    demos = collect_demonstrations(scenario, 2, 1_000_000)
    fit_args = dict(epochs=2, batch_size=64, lr=1e-3, log_std=-3.0, seed=1_000_000)
    clone(model, vecnorm, demos, **fit_args)
    mean = vecnorm.obs_rms.mean.copy()
    before = [p.detach().clone() for p in model.policy.parameters()]
    ticks, seen = [], []
    out = dagger(model, vecnorm, scenario, demos, rounds=2, episodes=1, log=lambda m: None,
                 progress=lambda steps, ok: ticks.append(steps), on_round=seen.append,
                 **fit_args)
    assert seen == out and [r["labelled_episodes"] for r in out] == [1, 2]
    assert [r["cloned_episodes"] for r in out] == [3, 4] and ticks == [10, 10]
    assert all(r["driving_success"] in (0.0, 1.0) for r in out)
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    assert th.all(model.policy.log_std == -3.0)
    np.testing.assert_array_equal(vecnorm.obs_rms.mean, mean)  # the first fit's normalization

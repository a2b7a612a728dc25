"""Zero-, first- and alpha-order gradient estimators (fingergym.gradients)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fingergym.gradients import (
    AlphaOrder,
    FirstOrder,
    FirstOrderUnavailable,
    Objective,
    ZeroOrder,
    aobg,
    ball_wall_edge,
    ball_with_wall,
    bench,
    bernstein_eps,
    choose_alpha,
    fobg,
    gradient_descent,
    heaviside,
    pivot_cliff,
    smoothed_moments,
    stiff_ramp,
    zobg,
)
from fingergym.gradients.bench import ball_aobg

BALL_THETAS = (0.1, 0.5, 0.6932, 0.7854)


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _Phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


# ---------------------------------------------------------------------------------------------
# toys and quadrature


def test_ball_objective_matches_the_paper_geometry() -> None:
    obj = ball_with_wall()
    edge = ball_wall_edge()
    assert edge == pytest.approx(0.6932, abs=1e-4)
    th = np.array([[0.1], [0.5], [edge - 1e-6], [edge + 1e-6], [math.pi / 4]])
    f = obj.values(th)
    g = obj.grads(th)[:, 0]
    x01 = 2 * math.sin(0.1) * math.cos(0.1) / 9.81
    assert f[0] == pytest.approx(-x01**2)
    assert f[1] == pytest.approx(-0.06**2) and g[1] == 0.0  # stopped by the wall
    assert f[2] == pytest.approx(-0.0036) and f[3] < -0.01  # the jump at the wall edge
    assert f[4] == pytest.approx(-(1 / 9.81) ** 2)  # best throw, pi/4
    # analytic gradient agrees with central differences away from the breakpoints
    for t in (0.1, 0.25, 0.75, 0.9):
        h = 1e-6
        fd = (obj.values(np.array([[t + h]])) - obj.values(np.array([[t - h]])))[0] / (2 * h)
        assert obj.grads(np.array([[t]]))[0, 0] == pytest.approx(fd, rel=1e-5, abs=1e-10)


def test_quadrature_matches_closed_forms() -> None:
    s = 0.1
    th = np.array([-0.05, 0.0, 0.07, 0.2])
    m = smoothed_moments(heaviside(), th, s)
    np.testing.assert_allclose(m.value, [_Phi(t / s) for t in th], atol=1e-12)
    np.testing.assert_allclose(m.grad, [_phi(t / s) / s for t in th], rtol=1e-10)
    np.testing.assert_array_equal(m.fo_mean, 0.0)
    nu = 0.01
    m = smoothed_moments(stiff_ramp(nu), th, s)
    exact = [(2 / nu) * (_Phi((nu / 2 - t) / s) - _Phi((-nu / 2 - t) / s)) for t in th]
    np.testing.assert_allclose(m.grad, exact, rtol=1e-9)
    np.testing.assert_allclose(m.fo_mean, exact, rtol=1e-9)  # continuous: FoBG unbiased
    # per-sample FoBG variance of a ramp: (2/nu)^2 p (1 - p) with p = nu/2 * mean
    p = np.array(exact) * nu / 2
    np.testing.assert_allclose(m.fo_var, (2 / nu) ** 2 * p * (1 - p), rtol=1e-8)


# ---------------------------------------------------------------------------------------------
# estimators


@pytest.mark.parametrize("theta", BALL_THETAS)
def test_monte_carlo_agrees_with_quadrature_moments(theta: float) -> None:
    obj, sigma, n, reps = ball_with_wall(), 0.1, 20, 4000
    rng = np.random.default_rng(1234)
    m = smoothed_moments(obj, theta, sigma)
    batch = np.full((reps, 1), theta)
    ez, ef = zobg(obj, batch, sigma, n, rng), fobg(obj, batch, sigma, n, rng)
    for est, mean_q, var_q in ((ez, m.grad[0], m.zo_var[0]), (ef, m.fo_mean[0], m.fo_var[0])):
        g = est.grad[:, 0]
        se = g.std(ddof=1) / math.sqrt(reps)
        assert abs(g.mean() - mean_q) < 3 * se, (theta, g.mean(), mean_q, se)
        # spread of one n-sample estimate == sqrt(per-sample variance / n)
        assert g.std(ddof=1) == pytest.approx(math.sqrt(var_q / n), rel=0.05)
        # the per-call variance diagnostic is an unbiased estimate of the per-sample variance
        v = est.var_zero if est is ez else est.var_first
        assert abs(v.mean() - var_q) < 3 * v.std(ddof=1) / math.sqrt(reps)


def test_fobg_is_exactly_zero_on_heaviside_while_zobg_is_unbiased() -> None:
    obj, sigma, n, reps = heaviside(), 0.1, 50, 2000
    rng = np.random.default_rng(7)
    for theta in (0.0, 0.05, -0.12):
        batch = np.full((reps, 1), theta)
        ef = fobg(obj, batch, sigma, n, rng)
        assert np.all(ef.grad == 0.0)
        exact = _phi(theta / sigma) / sigma
        g = zobg(obj, batch, sigma, n, rng).grad[:, 0]
        assert exact > 1.0
        assert abs(g.mean() - exact) < 3 * g.std(ddof=1) / math.sqrt(reps)


def test_zobg_baselines_both_unbiased_value_baseline_has_less_variance() -> None:
    obj, sigma, theta = ball_with_wall(), 0.1, 0.3
    assert (smoothed_moments(obj, theta, sigma, baseline="value").zo_var[0]
            < 0.5 * smoothed_moments(obj, theta, sigma, baseline="zero").zo_var[0])
    rng = np.random.default_rng(3)
    batch = np.full((4000, 1), theta)
    exact = smoothed_moments(obj, theta, sigma).grad[0]
    g = zobg(obj, batch, sigma, 20, rng, baseline="zero").grad[:, 0]
    assert abs(g.mean() - exact) < 3 * g.std(ddof=1) / math.sqrt(g.size)
    with pytest.raises(ValueError, match="baseline"):
        zobg(obj, batch, sigma, 20, rng, baseline="mean")  # type: ignore[arg-type]


def test_shapes_and_single_point_calls() -> None:
    obj, rng = ball_with_wall(), np.random.default_rng(0)
    single = aobg(obj, np.array([0.3]), 0.1, 30, rng, gamma=0.02, lipschitz=0.2)
    assert single.grad.shape == (1,) and isinstance(single.alpha, float)
    assert isinstance(single.eps, float) and single.var_zero > 0 and single.var_first > 0
    batch = zobg(obj, np.zeros((5, 1)) + 0.3, 0.1, 30, rng)
    assert batch.grad.shape == (5, 1) and batch.var_zero.shape == (5,)
    assert np.all(batch.alpha == 0.0) and np.all(np.isnan(batch.var_first))
    assert np.all(fobg(obj, np.zeros((5, 1)), 0.1, 30, rng).alpha == 1.0)
    with pytest.raises(ValueError, match="theta"):
        zobg(obj, np.zeros((5, 2)), 0.1, 30, rng)
    with pytest.raises(ValueError, match="sigma"):
        zobg(obj, np.zeros(1), 0.0, 30, rng)


def test_first_order_needs_a_gradient_oracle() -> None:
    obj = Objective("values only", 2, lambda x: (x**2).sum(axis=1))
    rng = np.random.default_rng(0)
    est = zobg(obj, np.array([1.0, -2.0]), 0.05, 4000, rng)
    np.testing.assert_allclose(est.grad, [2.0, -4.0], atol=0.3)
    with pytest.raises(FirstOrderUnavailable, match="no gradient oracle"):
        fobg(obj, np.zeros(2), 0.1, 10, rng)
    with pytest.raises(FirstOrderUnavailable):
        AlphaOrder(0.1, 10, gamma=0.1, lipschitz=1.0)(obj, np.zeros((1, 2)), rng)


# ---------------------------------------------------------------------------------------------
# the alpha rule


def test_bernstein_eps_formula_and_confidence_level() -> None:
    log_term = math.log(2 / 0.05)
    expected = math.sqrt(2 * 0.3 * log_term / 100) + 2 * 1.5 * log_term / 300
    assert float(bernstein_eps(0.3, 100, 1, 1.5, confidence=0.95)) == pytest.approx(expected)
    assert bernstein_eps(0.3, 100, 1, 1.5, 0.99) > bernstein_eps(0.3, 100, 1, 1.5, 0.9)
    assert bernstein_eps(0.3, 100, 3, 1.5) > bernstein_eps(0.3, 100, 1, 1.5)
    assert bernstein_eps(0.3, 1000, 1, 1.5) < bernstein_eps(0.3, 100, 1, 1.5)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="confidence"):
            bernstein_eps(0.3, 100, 1, 1.5, bad)


def test_choose_alpha_cases() -> None:
    fo = np.array([[1.0], [1.0], [1.0], [1.0]])
    zo = np.array([[1.1], [2.0], [2.0], [1.0]])
    var_first = np.array([1.0, 1.0, 1.0, 0.0])
    var_zero = np.array([3.0, 3.0, 3.0, 0.0])
    eps = np.array([0.1, 0.1, 0.6, 0.1])
    alpha = choose_alpha(fo, zo, var_first, var_zero, eps, gamma=0.5)
    # 0: inverse-variance optimum 3/4 is inside the trust region (0.75*0.1 <= 0.4)
    # 1: the optimum would add 0.75 bias > 0.4: alpha hits the constraint 0.4 / 1.0
    # 2: eps > gamma: too uncertain, pure zero order
    # 3: no variance at all and no disagreement: first order
    np.testing.assert_allclose(alpha, [0.75, 0.4, 0.0, 1.0])


@pytest.mark.parametrize("sigma", (0.05, 0.1))
def test_aobg_bias_stays_within_its_trust_region_on_the_ball(sigma: float) -> None:
    obj, reps = ball_with_wall(), 1000
    rng = np.random.default_rng(11)
    m = smoothed_moments(obj, np.array(BALL_THETAS), sigma)
    for n in (50, 100, 1000):
        ao = ball_aobg(sigma, n)
        for theta, exact, fo_bias in zip(BALL_THETAS, m.grad, m.fo_bias, strict=True):
            est = ao(obj, np.full((reps, 1), theta), rng)
            alpha, eps, b_hat = est.alpha, est.eps, est.bias_hat
            # the rule itself: certified room is never exceeded, alpha=0 when eps > gamma
            assert np.all(alpha[eps > ao.gamma] == 0.0)
            used = alpha > 0
            assert np.all(eps[used] + alpha[used] * b_hat[used] <= ao.gamma + 1e-12)
            # and the resulting estimator's actual bias is within gamma (3 standard errors)
            g = est.grad[:, 0]
            se = g.std(ddof=1) / math.sqrt(reps)
            assert abs(g.mean() - exact) <= ao.gamma + 3 * se
            if abs(fo_bias) > ao.gamma:  # FoBG alone would break the trust region here
                assert abs(g.mean() - exact) < abs(fo_bias)


def test_aobg_prefers_first_order_where_smooth_and_zero_order_at_the_wall() -> None:
    obj, rng = ball_with_wall(), np.random.default_rng(5)
    ao = ball_aobg(0.1, 100)
    smooth = ao(obj, np.full((400, 1), 0.1), rng).alpha.mean()
    wall = ao(obj, np.full((400, 1), ball_wall_edge()), rng).alpha.mean()
    few = ball_aobg(0.1, 10)(obj, np.full((400, 1), 0.1), rng).alpha
    assert smooth > 0.6 and wall < 0.35
    assert np.all(few == 0.0)  # 10 samples cannot certify anything: pure zero order


# ---------------------------------------------------------------------------------------------
# optimisation


def test_descent_driver_records_trajectory() -> None:
    obj = ball_with_wall()
    tr = gradient_descent(obj, ZeroOrder(0.1, 10), [0.1], 0.1, 7, trials=3,
                          rng=np.random.default_rng(0))
    assert tr.theta.shape == (8, 3, 1) and tr.cost.shape == (8, 3) and tr.alpha.shape == (7, 3)
    assert tr.grad.shape == (7, 3, 1) and tr.estimator == "ZoBG"
    np.testing.assert_array_equal(tr.theta[0], 0.1)
    np.testing.assert_allclose(tr.theta[1:], tr.theta[:-1] - 0.1 * tr.grad)
    np.testing.assert_allclose(tr.cost, obj.values(tr.theta.reshape(-1, 1)).reshape(8, 3))


def test_ball_optimisation_first_order_stuck_at_the_wall_zero_and_alpha_get_past() -> None:
    obj, edge = ball_with_wall(), ball_wall_edge()
    finals = {}
    for est in (ZeroOrder(0.1, 50), FirstOrder(0.1, 50), ball_aobg(0.1, 50)):
        tr = gradient_descent(obj, est, [0.1], 0.1, 1000, trials=8,
                              rng=np.random.default_rng(2022))
        finals[est.name] = (tr.final_theta[:, 0], tr.final_cost, tr.alpha.mean())
    th, cost, _ = finals["FoBG"]
    assert np.all(th < edge) and np.allclose(cost, -0.06**2)  # resting on the wall
    for name in ("ZoBG", "AoBG"):
        th, cost, _ = finals[name]
        assert np.all(th > edge) and np.all(cost < -0.0100), name
    assert 0.05 < finals["AoBG"][2] < 0.95  # AoBG really mixed the two


def test_cliff_optimisation_first_order_falls_off_zero_order_stays() -> None:
    obj = pivot_cliff()
    rng = np.random.default_rng(1)
    fo = gradient_descent(obj, FirstOrder(0.1, 50), [0.3], 0.1, 400, trials=6, rng=rng)
    zo = gradient_descent(obj, ZeroOrder(0.1, 50), [0.3], 0.1, 400, trials=6, rng=rng)
    assert np.all(fo.final_theta[:, 0] > math.pi / 4) and np.all(fo.final_cost == 0.0)
    assert np.all(np.abs(zo.final_theta[:, 0]) < math.pi / 4)
    assert np.all(zo.final_cost < -0.25)


# ---------------------------------------------------------------------------------------------
# bench


def test_bench_quick_json_has_documented_keys(tmp_path, capsys) -> None:
    png = tmp_path / "g.png"
    assert bench.main(["--quick", "--json", "--quiet", "--plot", str(png)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert tuple(res) == bench.JSON_KEYS
    assert res["boxflip"] is None and res["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res["config"]["quick"] is True
    for section in ("ball", "stiff", "cliff"):
        assert res[section], section
        for row in res[section]:
            assert set(bench.BIAS_ROW_KEYS) <= set(row)
    for row in res["optimisation"]:
        assert set(bench.OPT_ROW_KEYS) <= set(row)
    assert {r["estimator"] for r in res["optimisation"]} >= {"ZoBG", "FoBG", "AoBG"}
    # the headline numbers: FoBG is biased at the wall edge, ZoBG is not
    edge_rows = [r for r in res["ball"] if r["theta"] == 0.6932 and r["n"] == 100]
    assert edge_rows
    for r in edge_rows:
        assert r["fobg_bias"] > 10 * r["fobg_bias_se"]
        assert abs(r["zobg_bias"]) < 4 * r["zobg_bias_se"]
    heavi = [r for r in res["stiff"] if r["problem"] == "heaviside"]
    assert heavi and all(r["fobg_frac_zero"] == 1.0 for r in heavi)
    ball_opt = {r["estimator"]: r for r in res["optimisation"] if r["problem"] == "ball_with_wall"}
    assert ball_opt["FoBG"]["success_frac"] == 0.0 and ball_opt["ZoBG"]["success_frac"] == 1.0


def test_bench_writes_nothing_by_default(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert bench.main(["--quick", "--json", "--quiet", "--reps", "20", "--trials", "2",
                       "--iterations", "20"]) == 0
    assert json.loads(capsys.readouterr().out)["plot"] is None
    assert list(tmp_path.iterdir()) == []


def test_bench_help_and_bad_arguments(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        bench.main(["--help"])
    assert e.value.code == 0
    assert "--boxflip" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        bench.main(["--reps", "1"])
    assert e.value.code == 2


# ---------------------------------------------------------------------------------------------
# box flip-up (Drake, AutoDiffXd through contact)


@pytest.fixture(scope="module")
def boxflip_study() -> dict:
    pytest.importorskip("pydrake")
    from fingergym.gradients.boxflip import run_boxflip_study

    return run_boxflip_study(reps=4, sigmas=(0.005,), progress=False)


def test_boxflip_rollout_reproduces_the_env(boxflip_study) -> None:
    """The study's rollout is the env's physics: same trajectory as make_env, bit for bit."""
    st = boxflip_study["station_check"]
    assert st["env_steps"] == 35
    # with set-points switched where env.step really switches them: identical
    assert max(st["env_clock"].values()) < 1e-9, st["env_clock"]
    # on the exact 0.1 s grid too: every env step runs exactly ten 10 ms updates
    assert st["late_env_steps"] == []
    assert max(st["grid"].values()) < 1e-9, st["grid"]
    assert st["success_env"] and st["success_rollout"]
    assert st["return_rollout"] == pytest.approx(st["return_env"], abs=0.05)


def test_boxflip_autodiff_through_contact_matches_finite_differences(boxflip_study) -> None:
    from fingergym.gradients.boxflip import format_report

    res = boxflip_study
    nom = res["nominal"]
    assert nom["stood_up"]  # the nominal open-loop knots stand the box up
    assert nom["box_final"]["theta"] == pytest.approx(math.pi / 2, abs=0.15)
    ad, fd = np.array(nom["grad_autodiff"]), np.array(nom["grad_central_fd"])
    assert ad.shape == (res["dim"],) and np.all(np.isfinite(ad))
    assert np.linalg.norm(ad) > 1.0  # the return does depend on the knots
    # every coordinate, including the first knots, whose influence crosses the whole rollout
    np.testing.assert_allclose(ad, fd, rtol=3e-3, atol=5e-3 * np.abs(fd).max())
    assert nom["cost_autodiff"] == pytest.approx(nom["cost"], abs=1e-9)
    (row,) = res["sigmas"]
    assert row["var_zero"] > 0 and row["var_first"] > 0
    assert "Box flip-up" in format_report(res)


def test_boxflip_reward_transcription_matches_task_reward() -> None:
    pytest.importorskip("pydrake")
    from pydrake.autodiffutils import AutoDiffXd

    from fingergym.gradients.boxflip import _reward_autodiff
    from fingergym.scenario import load_scenario

    reward = load_scenario().plugins()[0].reward

    rng = np.random.default_rng(3)
    for theta in (0.0, -1e-12, 1e-12, math.pi, -math.pi / 2, 2.5, -4.0, 7.9):
        state = rng.normal(0.0, 0.3, 10)
        state[2] = theta
        target = rng.normal(0.0, 0.2, 2)
        got = _reward_autodiff(np.array([AutoDiffXd(v) for v in state]),
                               np.array([AutoDiffXd(v) for v in target]))
        assert got.value() == pytest.approx(float(reward(state, target)), abs=1e-12)

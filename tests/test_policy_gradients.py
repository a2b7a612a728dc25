"""Policy optimization on the box flip-up (fingergym.gradients.policy_opt / policy_bench)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fingergym.gradients import boxflip
from fingergym.gradients.policy_opt import (
    ZOBG_VARIANTS,
    Batch,
    LinearPolicy,
    Task,
    alpha_rule,
    fit_value,
    reinforce_samples,
    trace_var,
)

# ---------------------------------------------------------------------------------------------
# REINFORCE variants on a toy with a known gradient


def _toy_batch(W: np.ndarray, phi: np.ndarray, c: np.ndarray, beta: float, sigma: float,
               n: int, rng: np.random.Generator) -> Batch:
    """Episodes of a = W phi_t + sigma eps_t; r_t = -|a_t - c_t|^2 + beta * a_{t-1}[0]."""
    h = phi.shape[0]
    eps = rng.normal(size=(n, h, 2))
    a = np.einsum("kf,hf->hk", W, phi)[None] + sigma * eps
    r = -np.sum((a - c[None]) ** 2, axis=2)
    r[:, 1:] += beta * a[:, :-1, 0]
    return Batch(list(range(n)), eps, np.broadcast_to(phi, (n, *phi.shape)).copy(), r,
                 np.zeros(n, dtype=bool))


def test_reinforce_variants_are_unbiased_and_baselines_reduce_variance() -> None:
    rng = np.random.default_rng(0)
    h, sigma, beta = 6, 0.3, 0.7
    # like LinearPolicy: time features (here one-hot) plus other features
    phi = np.hstack([np.eye(h), rng.normal(size=(h, 2))])
    c = rng.normal(size=(h, 2))
    W = rng.normal(size=(2, phi.shape[1]))
    # exact gradient of E[sum_t r_t] w.r.t. W
    mu = phi @ W.T
    exact = -2 * np.einsum("hk,hf->kf", mu - c, phi)
    exact[0] += beta * phi[:-1].sum(axis=0)
    value = fit_value(_toy_batch(W, phi, c, beta, sigma, 2000, rng))  # an independent batch
    batch = _toy_batch(W, phi, c, beta, sigma, 40000, rng)
    variances = {}
    for v in ZOBG_VARIANTS:
        s = reinforce_samples(batch, sigma, v, value)
        se = s.std(axis=0, ddof=1) / np.sqrt(len(s))
        z = np.abs(s.mean(axis=0) - exact.ravel()) / se
        assert z.max() < 4.5, (v, z)
        variances[v] = trace_var(s)
    assert variances["rtg"] < variances["total"]
    assert variances["rtg_const"] < variances["rtg"]
    assert variances["rtg_value"] < variances["rtg_const"]
    with pytest.raises(ValueError, match="unknown REINFORCE variant"):
        reinforce_samples(batch, sigma, "nope")


# ---------------------------------------------------------------------------------------------
# the alpha rule


def test_alpha_rule_trusts_first_order_only_when_it_can_certify() -> None:
    rng = np.random.default_rng(1)
    g = np.array([1.0, -2.0, 0.5])
    # precise ZoBG, FoBG agreeing with it: alpha > 0, and the certified bound holds
    zs = g + 0.05 * rng.normal(size=(400, 3))
    fs = g + 0.01 * rng.normal(size=(400, 3))
    r = alpha_rule(zs, fs, gamma_frac=0.5, confidence=0.95)
    assert r["alpha"] > 0.5
    assert r["eps"] + r["alpha"] * r["bias_hat"] <= r["gamma"] + 1e-12
    assert r["grad"] == pytest.approx(r["alpha"] * fs.mean(0) + (1 - r["alpha"]) * zs.mean(0))
    # a biased FoBG: the trust region shrinks alpha so the bound still holds
    rb = alpha_rule(zs, fs + np.array([1.5, 0, 0]), gamma_frac=0.5, confidence=0.95)
    assert 0 < rb["alpha"] < r["alpha"]
    assert rb["eps"] + rb["alpha"] * rb["bias_hat"] == pytest.approx(rb["gamma"])
    assert rb["bias_z"] > 10
    # ZoBG too noisy for its confidence bound to fit inside gamma: alpha collapses to 0
    noisy = g + 50 * rng.normal(size=(16, 3))
    r0 = alpha_rule(noisy, fs[:16], gamma_frac=0.5, confidence=0.95)
    assert r0["eps"] > r0["gamma"] and r0["alpha"] == 0.0
    assert r0["grad"] == pytest.approx(noisy.mean(0))


# ---------------------------------------------------------------------------------------------
# the Drake rollouts


def test_closed_loop_rollout_replays_the_env_bit_for_bit() -> None:
    import fingergym

    s = boxflip.load_scenario()
    env = fingergym.make_env(s)
    rng = np.random.default_rng(2)
    delays = set()
    try:
        for seed in (100, 102):
            params = boxflip.episode_params(s, seed)
            env.reset(seed=seed)
            assert env.station.params == params
            delays.add(params.action_delay_periods)
            actions = rng.uniform(-1.2, 1.2, size=(12, 2)).astype(np.float32)
            states, rewards = [env.true_state()], []
            for a in actions:
                _, r, *_ = env.step(a)
                states.append(env.true_state())
                rewards.append(r)
            ep = boxflip.EpisodePlant(s, params).closed_loop(
                lambda i, obs, acts=actions: acts[i].astype(float), len(actions))
            np.testing.assert_array_equal(ep.state_values(), np.array(states))
            np.testing.assert_array_equal(ep.reward_values(), np.array(rewards))
    finally:
        env.close()
    assert delays == {0, 2}  # both set-point paths (hold and delay line) are covered


def test_fobg_through_drake_matches_finite_differences_for_the_policy_class() -> None:
    task = Task(horizon=20)
    theta = task.theta0()
    theta[task.policy.nodes + 1] = 0.2  # some feedback on the box angle, x action
    eps = np.random.default_rng(3).normal(size=(task.horizon, 2))
    seed = 10_004  # action delay 2, the finger touches, leaves and touches the box again
    ep, _ = task.episode(theta, seed, eps, autodiff=True)
    grad = np.asarray(ep.ret.derivatives())
    assert grad.shape == (task.policy.dim,)
    assert [p for _, p in _events(ep)].count("+finger-box") >= 2  # contact changes

    def ret(th: np.ndarray) -> float:
        return float(task.episode(th, seed, eps)[0].reward_values().sum())

    assert ret(theta) == pytest.approx(ep.ret.value(), abs=1e-9)
    h = 1e-6
    for k in (1, 2, task.policy.nodes + 1, task.policy.n_features + 2):
        e = np.zeros_like(theta)
        e[k] = h
        fd = (ret(theta + e) - ret(theta - e)) / (2 * h)
        assert grad[k] == pytest.approx(fd, rel=2e-3, abs=1e-4), k


def _events(ep: boxflip.Episode) -> list[tuple[int, str]]:
    from fingergym.gradients.policy_opt import contact_events

    return contact_events(ep.contact_modes())


def test_linear_policy_features_and_start() -> None:
    pol = LinearPolicy(horizon=35)
    obs = np.zeros(10)
    obs[2] = np.pi  # flat, upside down: -pi/2 from vertical
    phi0, phi_mid = pol.features(0, obs), pol.features(7, obs)
    assert phi0[:pol.nodes] == pytest.approx(np.eye(pol.nodes)[0])
    assert phi_mid[:pol.nodes].sum() == pytest.approx(1.0)  # a partition of unity
    assert phi0[pol.nodes + 1] == pytest.approx(-1.0)
    task = Task(horizon=35)
    W = task.theta0().reshape(2, -1)
    # the time part reproduces the nominal knots (in action units) on the nominal schedule
    knots = np.array(boxflip.NOMINAL_KNOTS)
    scaling = task.plant(0).scaling
    np.testing.assert_allclose(scaling.to_target(W[:, 1:pol.nodes].T), knots, atol=1e-12)
    assert np.all(W[:, pol.nodes:] == 0)


# ---------------------------------------------------------------------------------------------
# the bench


def test_policy_gradients_bench_emits_json_and_plot(tmp_path, capsys) -> None:
    from fingergym.gradients import policy_bench

    png = tmp_path / "pg.png"
    rc = policy_bench.main(["--quick", "--json", "--quiet", "--methods", "aobg,ppo",
                            "--episodes", "2",
                            "--eval-episodes", "2", "--plot", str(png)])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) == set(policy_bench.JSON_KEYS)
    assert [s["method"] for s in res["summary"]] == ["aobg", "ppo"]
    for s in res["summary"]:
        assert set(s) >= set(policy_bench.SUMMARY_KEYS)
        assert s["episodes"] == 4 and s["eval_episodes"] == 2
        assert 0.0 <= s["success_env"] <= 1.0
    a = res["methods"]["aobg"]
    assert len(a["iterations"]) == 2 and all(0 <= r["alpha"] <= 1 for r in a["iterations"])
    assert a["curve"][-1]["episodes"] == 4
    assert res["plot"] == str(png) and png.stat().st_size > 0


def test_policy_gradients_bench_cli_help_and_bad_input(capsys) -> None:
    from fingergym.cli import main as cli_main

    with pytest.raises(SystemExit) as e:
        cli_main(["bench", "policy-gradients", "--help"])
    assert e.value.code == 0
    assert "--quick" in capsys.readouterr().out
    from fingergym.gradients import policy_bench

    with pytest.raises(SystemExit):
        policy_bench.main(["--methods", "nope"])
    assert "unknown" in capsys.readouterr().err

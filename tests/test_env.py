"""The environment: gym API conformance, seeding, reward, randomization, bad input."""

import math
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from pydrake.gym import DrakeGymEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import fingergym
from fingergym.scaling import ActionScaling
from fingergym.scenario import load_scenario
from fingergym.sim.params import draw_params
from fingergym.sim.station import RewardSystem


@pytest.fixture(scope="module")
def env():
    e = fingergym.make_env()
    yield e
    e.close()


def rollout(env, seed: int, n: int = 30, action_seed: int = 0):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(action_seed)
    observations, rewards = [obs], []
    for _ in range(n):
        obs, r, *_ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        observations.append(obs)
        rewards.append(r)
    return np.array(observations), np.array(rewards)


def test_gymnasium_make_returns_drake_gym_env():
    env = gymnasium.make(fingergym.ENV_ID)
    assert isinstance(env.unwrapped, DrakeGymEnv)
    assert env.observation_space.shape == (10,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (2,) and env.action_space.dtype == np.float32
    env.close()


def test_env_checkers_pass_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # includes float32 casting and space-limit warnings
        gym_check_env(fingergym.make_env(), skip_render_check=True)
        sb3_check_env(fingergym.make_env(), warn=True)


def test_metadata_is_per_instance():
    before = dict(gymnasium.Env.metadata)
    for _ in range(2):
        e = fingergym.make_env(render_mode="rgb_array")
        assert e.metadata["render_modes"].count("rgb_array") == 1
    assert gymnasium.Env.metadata == before
    assert DrakeGymEnv.metadata == before


def test_same_seed_same_trajectory_different_seed_differs(env):
    obs_a, rew_a = rollout(env, seed=7)
    obs_b, rew_b = rollout(env, seed=7)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    obs_c, _ = rollout(env, seed=8)
    assert not np.allclose(obs_a, obs_c)


def seed_reward(box_state, finger_state, actions):
    """The reward exactly as written in seed 001 (MIT 6.421 lecture 18)."""
    angle_from_vertical = (box_state[2] % np.pi) - np.pi / 2
    cost = 2 * angle_from_vertical**2
    cost += 0.1 * box_state[5] ** 2
    effort = actions - finger_state[:2]
    cost += 0.1 * effort.dot(effort)
    cost += 0.1 * finger_state[2:].dot(finger_state[2:])
    return 10 - cost


def test_reward_system_equals_seed_formula_on_sampled_states():
    task, _ = load_scenario().plugins()
    system = RewardSystem(task, 10, 2)
    context = system.CreateDefaultContext()
    rng = np.random.default_rng(0)
    for _ in range(200):
        state = rng.normal(size=10) * [0.1, 0.1, 4, 0.1, 0.1, 1, 1, 5, 1, 1]
        target = rng.normal(size=2) * 0.2
        system.GetInputPort("state").FixValue(context, state)
        system.GetInputPort("target").FixValue(context, target)
        box = np.r_[state[0:3], state[5:8]]
        finger = np.r_[state[3:5], state[8:10]]
        expected = seed_reward(box, finger, target)
        assert system.GetOutputPort("reward").Eval(context)[0] == pytest.approx(expected, 1e-12)


def test_step_reward_uses_true_state_and_commanded_target(env):
    env.reset(seed=3)
    for a in ([0.3, -0.2], [-1.0, 1.0]):
        _, r, _, _, info = env.step(np.array(a, dtype=np.float32))
        s = env.true_state()
        expected = seed_reward(np.r_[s[0:3], s[5:8]], np.r_[s[3:5], s[8:10]], info["target"])
        assert r == pytest.approx(expected, 1e-9)


def test_episode_is_truncated_at_the_time_limit_not_terminated(env):
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        steps += 1
        assert not terminated
        done = truncated
    assert steps == 100 and info["end_reason"] == "time_limit"
    assert info["sim_time"] == pytest.approx(10.0)
    for key in ("success", "is_success", "angle_from_vertical", "box_omega", "sim_time"):
        assert key in info


def test_info_handler_is_installed(env):
    """Upstream drops info_handler; the env installs its own, and DrakeGymEnv.step (which
    calls it) returns its info: a normal step is not mistaken for a simulator fault."""
    env.reset(seed=0)
    assert env.info_handler == env._info
    _, _, _, truncated, info = env.step(np.zeros(2, np.float32))
    assert not truncated and "end_reason" not in info
    assert {"success", "angle_from_vertical", "box_omega", "sim_time", "target"} <= set(info)
    assert info["sim_time"] == pytest.approx(env.scenario.episode.step)


def test_reset_holds_the_finger_instead_of_the_previous_action(env):
    env.reset(seed=0)
    for _ in range(10):
        env.step(np.array([1.0, -1.0], np.float32))  # drive hard into a corner
    env.reset(seed=0)
    finger = env.true_state()[3:5]
    # The set-point after reset is where the finger is, not the last episode's action.
    np.testing.assert_allclose(env.scaling.to_target(env.action_port.Eval(
        env.simulator.get_context())), finger, atol=1e-9)
    for _ in range(5):
        env.simulator.AdvanceTo(env.simulator.get_context().get_time() + 0.1)
    np.testing.assert_allclose(env.true_state()[3:5], finger, atol=2e-3)


@pytest.mark.parametrize("bad", [[np.nan, 0.0], [0.0, np.inf], [0.1, 0.2, 0.3], [[0.1, 0.2]],
                                 "left"])
def test_bad_action_raises_and_env_stays_usable(env, bad):
    env.reset(seed=1)
    t0 = env.simulator.get_context().get_time()
    with pytest.raises(ValueError):
        env.step(bad)
    assert env.simulator.get_context().get_time() == t0
    obs, *_ = env.step(np.zeros(2, np.float32))
    assert np.all(np.isfinite(obs))


def test_randomized_parameters_stay_in_their_ranges():
    s = load_scenario()
    r = s.randomization
    env = fingergym.make_env(s)
    faces = set()
    for seed in range(60):
        env.reset(seed=seed)
        p = env.station.params
        box = p.task
        assert s.box.x_range[0] <= box["box_x"] <= s.box.x_range[1]
        assert s.box.mass * s.box.mass_scale[0] <= box["box_mass"] \
            <= s.box.mass * s.box.mass_scale[1]
        scale = box["box_length"] / s.box.length
        assert s.box.size_scale[0] <= scale <= s.box.size_scale[1]
        assert box["box_thickness"] / s.box.thickness == pytest.approx(scale)
        assert r.friction[0] <= p.friction <= r.friction[1]
        g = p.kp / s.controller.kp
        assert r.gain_scale[0] <= g <= r.gain_scale[1]
        assert p.kd == pytest.approx(s.controller.kd * math.sqrt(g))
        assert r.obs_noise_position[0] <= p.obs_noise_position <= r.obs_noise_position[1]
        assert r.obs_noise_velocity[0] <= p.obs_noise_velocity <= r.obs_noise_velocity[1]
        assert r.action_delay_periods[0] <= p.action_delay_periods <= r.action_delay_periods[1]
        faces.add(box["box_theta"])
        # The initial state reflects the draw.
        state = env.true_state()
        assert state[0] == pytest.approx(box["box_x"], abs=1e-3)
    assert faces == {0.0, math.pi}


def test_zero_width_ranges_turn_terms_off():
    s = load_scenario()
    off = {f"randomization.{k}": [v, v] for k, v in {
        "friction": 0.8, "gain_scale": 1.0, "obs_noise_position": 0.0,
        "obs_noise_velocity": 0.0, "action_delay_periods": 1}.items()}
    off.update({"box.x_range": [0.05, 0.05], "box.mass_scale": [1.0, 1.0],
                "box.size_scale": [1.0, 1.0], "box.flip_probability": 0.0})
    s_off = s.replace(**off)
    from pydrake.common import RandomGenerator

    gen = RandomGenerator(3)
    draws = [draw_params(s_off, gen).as_dict() for _ in range(5)]
    assert all(d == draws[0] for d in draws)
    p = draws[0]
    assert (p["box_x"], p["box_mass"], p["friction"], p["box_theta"],
            p["action_delay_periods"]) == (0.05, s.box.mass, 0.8, 0.0, 1)
    # No noise: observations equal the true state.
    env = fingergym.make_env(s_off)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs, env.true_state(), atol=1e-6)


def test_observation_noise_is_present_when_configured():
    s = load_scenario().replace(**{"randomization.obs_noise_position": [0.01, 0.01]})
    env = fingergym.make_env(s)
    obs, _ = env.reset(seed=0)
    diff = obs[:5] - env.true_state()[:5]
    assert 0.001 < np.std(diff) < 0.05


def test_action_targets_stay_inside_the_workspace(env):
    scaling = ActionScaling.from_scenario(env.scenario)
    lo, hi = scaling.low, scaling.high
    env.reset(seed=0)
    for a in ([-1, -1], [1, 1], [1, -1], [-1, 1]):
        _, _, _, _, info = env.step(np.array(a, np.float32))
        assert np.all(info["target"] >= np.array(lo) - 1e-12)
        assert np.all(info["target"] <= np.array(hi) + 1e-12)
    np.testing.assert_allclose(env.scaling.to_target([-1, -1]), lo)
    np.testing.assert_allclose(env.scaling.to_target([1, 1]), hi)


def test_rgb_array_render():
    env = fingergym.make_env(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert frame.std() > 5  # not a blank image


def test_every_step_runs_the_same_number_of_updates(env):
    """Upstream sums `time + time_step` in floating point, so some steps ran 11 updates, some 9."""
    env.reset(seed=0)
    counts = []
    for _ in range(100):
        before = env.simulator.get_num_discrete_updates()
        env.step(np.zeros(2, np.float32))
        counts.append(env.simulator.get_num_discrete_updates() - before)
    period = env.scenario.controller.period
    assert set(counts) == {round(env.scenario.episode.step / period)}

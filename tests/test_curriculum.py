"""Reset curriculum: difficulty interpolation of scenario keys, the tilted start it relies on,
the worker wrapper, the promotion callback, and its config validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import fingergym
from fingergym import load_scenario
from fingergym.policies.config import config_from_dict, load_train_config
from fingergym.policies.curriculum import (
    LEVEL_KEY,
    CurriculumCallback,
    CurriculumEnv,
    interpolate,
    scenario_at,
)
from fingergym.scenario import ScenarioError
from fingergym.tasks.box_flipup.task import angle_from_vertical

EASY = {"box.tilt_range": [1.0, 1.4], "box.x_range": [-0.15, -0.15],
        "randomization.action_delay_periods": [0, 0]}


def test_interpolation_ends_at_easy_and_at_the_scenario():
    base = load_scenario()
    assert scenario_at(base, EASY, 0.0).box.tilt_range == [1.0, 1.4]
    assert scenario_at(base, EASY, 1.0) == base
    mid = scenario_at(base, EASY, 0.5)
    assert mid.box.tilt_range == pytest.approx([0.5, 0.7])
    assert mid.box.x_range == pytest.approx([-0.125, -0.025])
    delay = mid.randomization.action_delay_periods
    assert delay == [0, 1] and all(isinstance(v, int) for v in delay)
    assert interpolate(2.0, 4.0, 0.25) == 2.5


def test_tilted_start_lifts_the_box_with_the_finger_under_it():
    s = load_scenario().replace(**{"box.tilt_range": [0.8, 0.8],
                                   "box.tool_start_probability": 1.0})
    env = fingergym.make_env(s)
    env.reset(seed=3)
    state = env.true_state()
    assert state[2] % np.pi == pytest.approx(0.8, abs=0.02)
    assert state[0] - 0.5 * 0.2 * 1.1 > s.bin.wall_x[0] - 0.01  # clear of the left wall
    # the finger starts below the lifted right half of the box, touching-close
    assert state[3] > state[0] and state[4] < state[1] + 0.1
    env.step(env.scaling.to_action(state[3:5]))  # hold: the finger keeps the box lifted
    assert abs(angle_from_vertical(env.true_state()[2])) < np.pi / 2 - 0.3


def test_tool_start_probability_puts_the_finger_at_the_box_or_at_home():
    """At a flat start the finger starts beside the box's right end (probability 1), at home
    (0), or either (0.5); a tilted box without the finger falls back."""
    base = load_scenario().replace(**{"box.flip_probability": 0.0})
    env = fingergym.make_env(base.replace(**{"box.tool_start_probability": 1.0}))
    env.reset(seed=4)
    st = dict(zip(env.observation_layout.names, env.true_state()))
    half = 0.5 * (st["finger_x"] - st["box_x"])
    assert 0.09 * 0.5 < half < 0.12 * 0.5 + 0.02 and st["finger_z"] < 0.03  # beside, on the floor
    env.set_scenario(base.replace(**{"box.tilt_range": [0.8, 0.8]}))
    env.reset(seed=4)
    assert env.true_state()[3:5] == pytest.approx(env.robot.home(), abs=1e-6)
    env.set_scenario(base.replace(**{"box.tool_start_probability": 0.5}))
    at_home = []
    for seed in range(12):
        env.reset(seed=seed)
        at_home.append(bool(np.allclose(env.true_state()[3:5], env.robot.home(), atol=1e-6)))
    assert 0 < sum(at_home) < 12


def test_untilted_start_is_the_old_start():
    env = fingergym.make_env()
    env.reset(seed=5)
    state = env.true_state()
    assert state[2] % np.pi == pytest.approx(0.0, abs=1e-6)
    assert state[3:5] == pytest.approx(env.robot.home(), abs=1e-6)


def test_set_scenario_only_changes_what_a_reset_draws():
    env = fingergym.make_env()
    with pytest.raises(ValueError, match="episode"):
        env.set_scenario(env.scenario.replace(**{"episode.time_limit": 5.0}))
    env.set_scenario(env.scenario.replace(**{"box.tilt_range": [1.2, 1.2]}))
    env.reset(seed=0)
    assert env.true_state()[2] % np.pi == pytest.approx(1.2, abs=0.02)


def test_worker_wrapper_draws_the_difficulty_and_replays_easier_ones():
    base = load_scenario()
    env = CurriculumEnv(fingergym.make_env(base), base, EASY, difficulty=0.0, replay=0.5)
    _, info = env.reset(seed=0)
    assert info[LEVEL_KEY] == 0.0
    assert env.unwrapped.true_state()[2] % np.pi > 0.9  # easiest: lifted
    env.set_difficulty(1.0)
    _, info = env.reset(seed=1)
    assert info[LEVEL_KEY] == 1.0 and env.unwrapped.scenario == base  # no replay at 1
    env.set_difficulty(0.6)
    levels = [env.reset(seed=10 + i)[1][LEVEL_KEY] for i in range(12)]
    assert any(lv == 0.6 for lv in levels) and any(lv < 0.6 for lv in levels)
    assert all(0.0 <= lv <= 0.6 for lv in levels)
    assert env.step(np.zeros(2, dtype=np.float32))[4][LEVEL_KEY] == levels[-1]


def test_callback_promotes_on_success_at_the_current_difficulty(tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    base = load_scenario()
    venv = DummyVecEnv([lambda: CurriculumEnv(fingergym.make_env(base), base, EASY)])
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=8, device="cpu")
    cb = CurriculumCallback(tmp_path, start=0.0, step=0.25, promote_at=0.7, window=4)
    cb.init_callback(model)
    cb.on_training_start({}, {})

    def episodes(results, level):
        for ok in results:
            cb.update_locals({"dones": np.array([True]),
                              "infos": [{LEVEL_KEY: level, "is_success": ok}]})
            cb.on_step()

    episodes([True, True, True, True], 0.3)    # another level: ignored
    episodes([True, False, False, False], 0.0)  # 25% < 70%: stays
    assert cb.difficulty == 0.0
    episodes([True, True, True], 0.0)  # last 4: 75%
    assert cb.difficulty == 0.25
    assert venv.get_attr("difficulty") == [0.25]  # pushed to the workers
    rows = json.loads((tmp_path / "curriculum.json").read_text())
    assert [r["difficulty"] for r in rows] == [0.0, 0.25] and rows[1]["success_rate"] == 0.75
    resumed = CurriculumCallback(tmp_path, start=0.0, step=0.25, promote_at=0.7, window=4)
    assert resumed.difficulty == 0.25


@pytest.mark.parametrize("keys, key", [
    ({"randomization.no_such": [0, 1]}, "curriculum.keys.randomization.no_such"),
    ({"box.tilt_range": 1.0}, "curriculum.keys.box.tilt_range"),
    ({"box.tilt_range": [0.0, 3.0]}, "box.tilt_range"),
    ({"box.no_such": [0, 1]}, "curriculum.keys.box.no_such"),
])
def test_curriculum_config_errors_name_file_and_key(tmp_path, keys, key):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"curriculum": {"keys": keys}}))
    with pytest.raises(ScenarioError) as e:
        load_train_config(path)
    assert str(path) in str(e.value) and key in str(e.value)


def test_curriculum_config_loads():
    cfg = config_from_dict({"curriculum": {"keys": EASY, "step": 0.2}})
    assert cfg.curriculum.keys == EASY and cfg.curriculum.step == 0.2


def test_expert_free_recipe_config_loads():
    from importlib import resources

    path = resources.files("fingergym.configs").joinpath("train_expertfree.yaml")
    cfg = load_train_config(Path(str(path)))
    assert cfg.warm_start.episodes == 0 and cfg.prior.hold_steps > 0
    assert cfg.curriculum.task_starts and cfg.curriculum_keys()  # the task's easy starts
    assert cfg.checkpoint_freq == cfg.eval.freq  # every evaluation has its snapshot


def test_config_keys_add_to_and_override_the_task_starts():
    cfg = config_from_dict({"curriculum": {"task_starts": True,
                                           "keys": {"box.tilt_range": [1.0, 1.2]}}})
    keys = cfg.curriculum_keys()
    assert keys["box.tilt_range"] == [1.0, 1.2] and "box.x_range" in keys
    assert config_from_dict({}).curriculum_keys() == {}  # off by default


def test_lift_easy_start_puts_the_pads_around_the_box():
    """GripperLift.easy_starts: at difficulty 0 the pads start clear of the box, around it, and
    closing the jaw then raising lifts it; at difficulty 1 the start is the task's own."""
    from fingergym.env import make_env
    from fingergym.registry import scenario_of

    base = load_scenario(scenario_of("gripper_lift"))
    task, robot = base.plugins()
    easy = task.easy_starts()
    assert scenario_at(base, easy, 1.0) == base
    env = make_env(base)
    env.set_scenario(scenario_at(base, easy, 0.0))
    env.reset(seed=3)
    s = dict(zip(env.observation_layout.names, env.true_state()))
    half = 0.5 * base.box.length * base.box.size_scale[0]
    assert abs(s["gripper_x"] - s["box_x"]) < 1e-3 and abs(s["gripper_z"] - s["box_z"]) < 0.01
    assert half < s["jaw"] < half + 0.01 and abs(s["box_theta"]) < 1e-3
    for target in ([0.0, s["gripper_z"], half - 0.03],) * 3 + ([0.0, 0.15, half - 0.03],) * 5:
        env.step(env.scaling.to_action(env.scaling.clamp_target(target)).astype(np.float32))
    assert env._info(env.simulator)["box_height"] > base.lift.height
    env.close()


def test_train_defaults_to_the_expert_free_recipe_for_a_task_without_an_expert(capsys):
    from fingergym.policies.train import _default_config_for
    from fingergym.registry import scenario_of

    shipped = load_train_config()
    assert _default_config_for(shipped, "") is shipped  # the flip-up has an expert
    cfg = _default_config_for(shipped, scenario_of("gripper_lift"))  # the planner cannot plan it
    assert cfg.warm_start.episodes == 0 and cfg.curriculum.task_starts
    out = capsys.readouterr().out
    assert "no scripted expert" in out and "train_expertfree.yaml" in out
    assert "fingergym.planning plans the box flip-up" in out  # says why not the planner
    # Without its expert the flip-up gets the planner's demonstrations (issue 11).
    cfg = _default_config_for(shipped, "", expert_free=True)
    assert cfg.warm_start.expert == "planner" and cfg.warm_start.episodes > 0
    assert not cfg.curriculum_keys()
    assert "train_planner.yaml" in capsys.readouterr().out


def test_train_cli_expert_free_refuses_an_explicit_config(capsys):
    import argparse

    from fingergym.policies.train import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--expert-free", "--config", "configs/train.yaml"])
    assert run(args) == 2
    assert "--expert-free" in capsys.readouterr().err


def test_train_task_records_the_task_name_not_this_machines_path(monkeypatch, tmp_path, capsys):
    import argparse

    from fingergym.policies import train as train_module

    seen = {}

    def fake_train(cfg, run_dir, **kw):
        seen["cfg"] = cfg
        return {"timesteps": 0, "wall_s": 0.0, "final_eval": None, "best_eval": None,
                "interrupted": False, "signal": None, "error": None}

    monkeypatch.setattr(train_module, "train", fake_train)
    parser = argparse.ArgumentParser()
    train_module.add_arguments(parser)
    args = parser.parse_args(["--task", "fingergym/GripperLift-v0", "--run-dir",
                              str(tmp_path / "run")])
    assert train_module.run(args) == 0
    cfg = seen["cfg"]
    assert cfg.env.scenario == "fingergym/GripperLift-v0"  # resolves wherever installed
    assert cfg.train_scenario().plugins()[0].name == "gripper_lift"
    assert cfg.curriculum.task_starts  # the lift's default: the curriculum recipe
    args = parser.parse_args(["--task", "no/Such-v0"])
    assert train_module.run(args) == 2

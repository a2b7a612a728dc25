"""Plug-ins: a third task, written in a temporary folder, goes through the whole sim chain
(registration, env, gymnasium's checker, stepping, recording, reading back) without touching
the package."""

from __future__ import annotations

import textwrap
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

TASK = '''
"""Reach: bring the robot's tool to a goal point (no objects)."""
from dataclasses import dataclass

import numpy as np

from fingergym.interfaces import ObservationSpec, Region, Task
from fingergym.scenario import param


@dataclass
class GoalParams:
    x: float = param(0.1, -0.2, 0.2)
    z: float = param(0.2, 0.05, 0.4)


class Reach(Task):
    name = "reach"
    sections = {"goal": GoalParams}

    def observation(self):
        return ObservationSpec(self.robot.state_sources())

    def _q(self, state):
        lay = self.observation_layout
        names = [n for n, s in self.observation().sources.items() if s.kind == "joint_position"]
        return np.asarray(state)[..., lay.indices(names)]

    def nominal_params(self):
        return {"goal_x": self.scenario.goal.x}

    def draw_params(self, rng):
        return {"goal_x": self.scenario.goal.x}

    def add_to_plant(self, plant, params, contact):
        from pydrake.geometry import Box
        from pydrake.math import RigidTransform

        plant.RegisterCollisionGeometry(plant.world_body(), RigidTransform([0, 0, -0.05]),
                                        Box(1.0, 1.0, 0.1), "floor", contact(False))

    def reach_region(self):
        return Region((-0.25, 0.25), 0.0, 0.4)

    def reward(self, state, target):
        goal = np.array([self.scenario.goal.x, self.scenario.goal.z])
        return -np.linalg.norm(self._q(state) - goal, axis=-1)

    def is_success(self, state):
        return bool(self.reward(state, None) > -0.01)

    def info(self, state):
        return {"distance": float(-self.reward(state, None))}
'''


@pytest.fixture(scope="module")
def reach_id(tmp_path_factory):
    import fingergym

    folder = tmp_path_factory.mktemp("my_tasks")
    (folder / "reach_task.py").write_text(textwrap.dedent(TASK))
    scenario = folder / "reach.yaml"
    scenario.write_text(f"task: {folder / 'reach_task.py'}:Reach\nrobot: finger\n"
                        "goal: {x: 0.12, z: 0.25}\nfinger: {home: [0.0, 0.15]}\n")
    fingergym.register_env("mine/Reach-v0", scenario)
    return "mine/Reach-v0"


def test_third_task_from_a_folder_is_a_checked_gym_env(reach_id, capsys):
    from fingergym.cli import main

    env = gymnasium.make(reach_id)
    base = env.unwrapped
    assert base.task.name == "reach" and base.robot.name == "finger"
    assert base.observation_layout.names == ("finger_x", "finger_z", "finger_x_v", "finger_z_v") \
        or base.observation_layout.names == ("finger_x", "finger_z", "finger_vx", "finger_vz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(base, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert "distance" in info
    # drive toward the goal: the reward rises
    goal_action = base.scaling.to_action([0.12, 0.25])
    rewards = [env.step(goal_action.astype(np.float32))[1] for _ in range(10)]
    assert rewards[-1] > rewards[0] and rewards[-1] > -0.01
    env.close()
    assert main(["tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "fingergym/BoxFlipUp-v0  robot=finger  task=box_flipup" in lines
    assert any(line.startswith("mine/Reach-v0  robot=finger  task=") for line in lines)


def test_third_task_records_and_reads_back_one_episode(reach_id, tmp_path):
    from fingergym.replay.reader import read_episode
    from fingergym.replay.sim_log import RecordEpisodes

    env = RecordEpisodes(gymnasium.make(reach_id, max_episode_steps=None).unwrapped, tmp_path,
                         metadata={"policy": "constant"})
    obs, info = env.reset(seed=1)
    done, n = False, 0
    while not done:
        obs, r, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        done, n = terminated or truncated, n + 1
    env.close()
    ep = read_episode(info["bag"])
    assert ep.steps == n and ep.finished
    assert ep.observation_layout.same_names(env.unwrapped.observation_layout)
    assert ep.action_layout.names == ("finger_x", "finger_z")
    assert ep.metadata["task"].endswith(":Reach") and ep.metadata["robot"] == "finger"
    # the robot's raw topics (no tracked object here): joint states and commands
    assert ep.topic_counts["/joint_states"] == n
    assert ep.topic_counts["/finger_controller/commands"] == n
    assert ep.scenario.goal.x == 0.12


def test_a_task_folder_is_found_without_registering_anything(tmp_path, monkeypatch, capsys):
    """Adding a task is one folder: a package in tasks/ with TASK, GYM_IDS and its scenario.
    (The folder is put on ``fingergym.tasks.__path__``, which is what dropping it into tasks/
    does in an editable install.)"""
    import fingergym.tasks
    from fingergym import registry
    from fingergym.cli import main

    folder = tmp_path / "zz_reach"
    folder.mkdir()
    (folder / "task.py").write_text(textwrap.dedent(TASK))
    (folder / "__init__.py").write_text(
        "from .task import Reach\nTASK = Reach\nGYM_IDS = {'zz/Reach-v0': 'scenario.yaml'}\n")
    (folder / "scenario.yaml").write_text("task: zz_reach\nrobot: finger\n"
                                          "goal: {x: -0.1, z: 0.2}\nfinger: {home: [0.0, 0.15]}\n")
    monkeypatch.setattr(fingergym.tasks, "__path__", [*fingergym.tasks.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))
    monkeypatch.setattr(registry, "_ENVS", dict(registry._ENVS))
    try:
        assert main(["tasks"]) == 0
        assert "zz/Reach-v0  robot=finger  task=zz_reach" in capsys.readouterr().out.splitlines()
        env = gymnasium.make("zz/Reach-v0")
        assert env.unwrapped.task.name == "reach" and env.unwrapped.scenario.goal.x == -0.1
        env.close()
    finally:
        gymnasium.registry.pop("zz/Reach-v0", None)


def test_built_in_tasks_and_robots_are_their_folders():
    from fingergym import registry

    tasks = {p.name for p in (registry.Path(__file__).parents[1] / "tasks").iterdir()
             if (p / "__init__.py").exists()}
    robots = {p.name for p in (registry.Path(__file__).parents[1] / "robots").iterdir()
              if (p / "__init__.py").exists()}
    assert tasks <= set(registry.task_names()) and robots <= set(registry.robot_names())
    assert registry.task_class("gripper_lift").__name__ == "GripperLift"
    assert registry.robot_class("gripper").__name__ == "Gripper"

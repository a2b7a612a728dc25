"""Potential-based reward shaping: the term is gamma*Phi(s') - Phi(s), it telescopes, the env's
own reward is untouched, and the config names only the task's potentials."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

import fingergym
from fingergym.policies.config import load_train_config
from fingergym.policies.shaping import SHAPING_KEY, PotentialShaping
from fingergym.scenario import ScenarioError


def test_shaping_adds_the_potential_difference_and_telescopes():
    raw = fingergym.make_env()
    reach_potential = raw.task.potentials()["reach"]
    shaped = PotentialShaping(fingergym.make_env(), reach_potential, gamma=1.0, scale=2.0)
    obs_r, _ = raw.reset(seed=7)
    obs_s, _ = shaped.reset(seed=7)
    first = reach_potential(obs_s)
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(5):
        a = rng.uniform(-1, 1, 2).astype(np.float32)
        obs_r, r_raw, *_ = raw.step(a)
        prev = obs_s
        obs_s, r_shaped, _, _, info = shaped.step(a)
        term = 2.0 * (reach_potential(obs_s) - reach_potential(prev))
        assert info[SHAPING_KEY] == pytest.approx(term)
        assert r_shaped == pytest.approx(r_raw + term)  # same seed: same episode, same reward
        total += info[SHAPING_KEY]
    assert total == pytest.approx(2.0 * (reach_potential(obs_s) - first))


def test_shaping_potential_must_be_the_tasks(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"shaping": {"potential": "nope"}}))
    with pytest.raises(ScenarioError) as e:
        load_train_config(path)
    assert str(path) in str(e.value) and "shaping.potential" in str(e.value)
    path.write_text(yaml.safe_dump({"shaping": {"potential": "upright"}}))
    assert load_train_config(path).shaping.potential == "upright"

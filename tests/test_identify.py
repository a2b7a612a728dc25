"""``fingergym identify`` recovers physics offsets planted in logged sim episodes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fingergym.cli import main
from fingergym.env import make_env
from fingergym.replay.reader import read_episode
from fingergym.replay.sim_log import RecordEpisodes
from fingergym.scenario import load_scenario
from fingergym.tasks.box_flipup.experts import ScriptedFlip

MASS, GAIN, DELAY = 1.2, 0.85, 1  # planted: x1.2 box mass, x0.85 gains, one period of delay


def planted(prior):
    """The 'true' robot: the prior with the planted offsets and no randomization of them."""
    return prior.replace(**{
        "box.mass": prior.box.mass * MASS, "box.mass_scale": [1.0, 1.0],
        "box.size_scale": [1.0, 1.0], "controller.kp": prior.controller.kp * GAIN,
        "controller.kd": prior.controller.kd * math.sqrt(GAIN),
        "randomization.gain_scale": [1.0, 1.0], "randomization.action_delay_periods": [DELAY] * 2,
        "randomization.friction": [prior.contact.friction] * 2,
        "randomization.obs_noise_position": [0.0, 0.0],
        "randomization.obs_noise_velocity": [0.0, 0.0], "episode.time_limit": 1.5})


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """Three short pushes of the box (the scripted flip-up plus exploration noise)."""
    root = tmp_path_factory.mktemp("identify_bags")
    true = planted(load_scenario())
    env = RecordEpisodes(make_env(true), root)
    expert, rng = ScriptedFlip(true), np.random.default_rng(0)
    for seed in range(3):
        env.reset(seed=seed)
        done = False
        while not done:
            a = np.clip(expert(env.unwrapped.true_state()) + 0.3 * rng.standard_normal(2), -1, 1)
            *_, term, trunc, _ = env.step(a)
            done = term or trunc
    env.close()
    return sorted(env.bags)


def test_identify_recovers_planted_offsets(bags, tmp_path, capsys):
    from fingergym.replay.identify import as_robot_bag, max_divergence

    prior_path = tmp_path / "prior.yaml"  # the nominal scenario the fit starts from
    prior_path.write_text(open(load_scenario().source).read())
    out = tmp_path / "id" / "identified.yaml"
    rc = main(["identify", *map(str, bags), "-o", str(out), "--scenario", str(prior_path),
               "--params", "box_mass,gain_scale,action_delay_periods", "--delays", "0:2",
               "--holdout", "1", "--max-nfev", "15"])
    text = capsys.readouterr().out
    assert rc == 0, text
    ident = load_scenario(out)  # a complete scenario that train/eval/replay --scenario load
    prior = load_scenario(prior_path)
    assert ident.box.mass == pytest.approx(prior.box.mass * MASS, rel=0.03)
    assert ident.controller.kp == pytest.approx(prior.controller.kp * GAIN, rel=0.03)
    assert ident.randomization.action_delay_periods == [DELAY, DELAY]
    lo, hi = ident.box.mass_scale
    assert lo < 1.0 < hi and hi - lo < 0.6  # narrowed around the fit (prior: 0.7..1.3)
    assert "NO:" not in text  # all three identified on these pushes
    assert out.with_name("identified_report.png").stat().st_size > 0
    assert "held out" in out.with_name("identified_report.md").read_text()
    # the held-out episode replays closer with the identified physics than with the prior
    held = as_robot_bag(read_episode(bags[-1]))
    fitted = {"box_mass": ident.box.mass, "kp": ident.controller.kp, "kd": ident.controller.kd,
              "action_delay_periods": DELAY}
    before = max_divergence(held, prior, {})["robot_pos"]
    after = max_divergence(held, prior, fitted)["robot_pos"]
    assert after < before / 3


def test_identify_flags_a_parameter_buried_in_noise(tmp_path):
    """The finger holds still above the box: only the box's sinking into the floor (0.1 mm
    more for the planted mass) depends on its mass, far under the 2 mm position noise."""
    from fingergym.replay.identify import fit

    true = planted(load_scenario()).replace(**{"randomization.obs_noise_position": [2e-3, 2e-3]})
    env = RecordEpisodes(make_env(true), tmp_path)
    env.reset(seed=0)
    base = env.unwrapped
    hold = base.scaling.to_action(np.asarray(true.finger.home, dtype=float))
    for _ in range(10):
        env.step(hold)
    env.close()
    f = fit([read_episode(env.bags[0])], load_scenario(), ["box_mass"], max_nfev=3)
    assert not f.identifiable["box_mass"]
    assert f.std["box_mass"] > 0.2 * f.value["box_mass"]


def test_identify_cli_errors(tmp_path, capsys):
    assert main(["identify", str(tmp_path / "nope"), "-o", str(tmp_path / "x.yaml")]) == 2
    assert "no such bag" in capsys.readouterr().err
    assert main(["identify", str(tmp_path), "-o", str(tmp_path / "x.yaml")]) == 2
    assert "no bags" in capsys.readouterr().err

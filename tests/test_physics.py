"""Physics sanity of the chosen contact model and time step (see README, "Physics choices")."""

import numpy as np
import pytest

import fingergym
from fingergym.scenario import load_scenario
from fingergym.tasks.box_flipup.experts import ScriptedFlip


def max_penetration(env) -> float:
    """Deepest point-contact penetration [m] right now, from Drake's ContactResults."""
    diagram = env.station.diagram
    plant = diagram.GetSubsystemByName("plant")
    ctx = plant.GetMyContextFromRoot(env.simulator.get_context())
    results = plant.get_contact_results_output_port().Eval(ctx)
    depths = [results.point_pair_contact_info(i).point_pair().depth
              for i in range(results.num_point_pair_contacts())]
    return max(depths, default=0.0)


@pytest.mark.parametrize("theta", [0.0, np.pi])
def test_box_at_rest_does_not_creep(theta):
    s = load_scenario().replace(**{"randomization.flip_probability": float(theta > 0)})
    env = fingergym.make_env(s, randomize=False)
    env.reset(seed=0)
    hold = env.scaling.to_action(env.scaling.high)  # finger parked high and right
    start = None
    for k in range(50):  # 5 s
        env.step(hold)
        if k == 4:
            start = env.true_state().copy()
    end = env.true_state()
    assert abs(end[0] - start[0]) < 1e-5       # x drift [m]
    assert abs(end[2] - start[2]) < 1e-5       # rotation [rad]
    assert np.max(np.abs(end[5:8])) < 1e-3     # at rest
    assert max_penetration(env) < 5e-4         # resting contact depth < 0.5 mm


def test_scripted_motion_pivots_box_to_standing_with_small_penetration():
    env = fingergym.make_env(randomize=False)
    script = ScriptedFlip(env.scenario)
    env.reset(seed=0)
    deepest, max_tilt, done = 0.0, 0.0, False
    while not done:
        _, _, _, done, info = env.step(script(env.true_state()))
        deepest = max(deepest, max_penetration(env))
        max_tilt = max(max_tilt, abs(info["angle_from_vertical"] + np.pi / 2))
    assert info["success"], info
    assert abs(info["angle_from_vertical"]) < 0.05
    state = env.true_state()
    # It stands against the left wall, on its short edge.
    wall = env.scenario.bin.wall_x[0]
    assert state[0] == pytest.approx(wall + 0.5 * env.scenario.box.thickness, abs=5e-3)
    assert state[1] == pytest.approx(0.5 * env.scenario.box.length, abs=5e-3)
    assert deepest < 3e-3  # penetration stays small while pushing hard [m]


def test_scripted_flip_works_under_randomization():
    """The randomized task stays feasible: the scripted baseline flips 14 of 20 randomized
    boxes (seeds 0-19), as the README's physics section claims."""
    env = fingergym.make_env()
    script = ScriptedFlip(env.scenario)
    successes = 0
    for seed in range(20):
        env.reset(seed=seed)
        done = False
        while not done:
            _, _, _, done, info = env.step(script(env.true_state()))
        successes += info["success"]
    assert successes >= 14

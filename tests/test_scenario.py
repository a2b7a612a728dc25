"""The scenario file: loaded once, validated, errors name the file and the key."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from fingergym.scaling import ActionScaling
from fingergym.scenario import (
    ScenarioError,
    default_scenario_path,
    load_scenario,
    scenario_from_dict,
    to_dict,
)


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def default_dict() -> dict:
    return yaml.safe_load(default_scenario_path().read_text())


def test_default_file_loads_and_matches_dataclass_defaults():
    s = load_scenario()
    assert s.source == str(default_scenario_path())
    # The YAML and the code defaults describe the same station (one source of truth).
    assert to_dict(s) == to_dict(scenario_from_dict({}))


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("box.mass", -1.0, "box.mass: must be > 0"),
        ("box.mas", 1.0, "box.mas: unknown key"),
        ("contact.model", "soft", "contact.model: must be one of"),
        ("plant.time_step", "fast", "plant.time_step: expected a number"),
        ("randomization.friction", [1.0, 0.5], "randomization.friction: lower bound"),
        ("randomization.action_delay_periods", [0.5, 2], "expected an integer"),
        ("finger.home", [0.9, 0.1], "finger.home"),
        ("episode.time_limit", float("nan"), "episode.time_limit: must be finite"),
        ("box.x_range", [-0.3, 0.1], "box.x_range"),
        ("contact.resolution_hint", 0.0, "contact.resolution_hint: must be > 0"),
        ("controller.rate_limit", 1, "controller.rate_limit: expected true or false"),
        ("controller.rate_limit", "yes", "controller.rate_limit: expected true or false"),
        ("bin.headroom", -0.1, "bin.headroom: must be >= 0"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, key, value, message):
    data = default_dict()
    section, leaf = key.split(".")
    data[section][leaf] = value
    path = write(tmp_path, data)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_unknown_section_and_non_mapping(tmp_path):
    with pytest.raises(ScenarioError, match="gripper: unknown key"):
        load_scenario(write(tmp_path, {"gripper": {}}))
    with pytest.raises(ScenarioError, match="task: unknown task 'nope'"):
        load_scenario(write(tmp_path, {"task": "nope"}))
    with pytest.raises(ScenarioError, match="box: expected a mapping"):
        load_scenario(write(tmp_path, {"box": 3}))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("box: [unclosed")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)


def test_yaml11_exponent_floats_are_numbers(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("contact:\n  stiffness: 2e5\n")
    assert load_scenario(path).contact.stiffness == 2e5


def test_partial_file_keeps_defaults_and_replace_validates():
    s = load_scenario()
    heavier = s.replace(**{"box.mass": 2.0})
    assert heavier.box.mass == 2.0 and s.box.mass == 1.0
    with pytest.raises(ScenarioError, match="box.mass"):
        s.replace(**{"box.mass": 0.0})


def test_workspace_is_inside_walls_and_joint_limits():
    s = load_scenario()
    _, robot = s.plugins()
    scaling = ActionScaling.from_scenario(s)
    lo, hi = scaling.low, scaling.high
    r, lim = robot.radius, robot.limits
    assert lo[0] >= s.bin.wall_x[0] + r and hi[0] <= s.bin.wall_x[1] - r
    assert lo[0] >= lim.lower[0] and hi[0] <= lim.upper[0]
    assert lo[1] >= s.bin.floor_z + r and hi[1] <= lim.upper[1]
    # the shipped numbers (the shipped policy's action scaling)
    np.testing.assert_allclose(lo, [-0.255, 0.01])
    np.testing.assert_allclose(hi, [0.255, 0.31])


def test_scenario_names_task_and_robot_and_old_files_still_load():
    s = load_scenario()
    assert (s.task, s.robot) == ("box_flipup", "finger")
    # a scenario file of the first release (flat sections, finger geometry in the scenario)
    old = {"finger": {"radius": 0.01, "mass": 1.0, "x_limits": [-0.3, 0.3],
                      "z_limits": [0.0, 0.5], "home": [0.0, 0.15]},
           "episode": {"step": 0.1, "time_limit": 10.0, "success_angle": 0.2,
                       "success_omega": 0.5},
           "randomization": {"box_x": [-0.05, 0.05], "flip_probability": 0.3,
                             "box_mass_scale": [0.7, 1.3], "box_size_scale": [0.9, 1.1]},
           "observation": {"box_velocity": "estimated"}}
    legacy = scenario_from_dict(old, "old.yaml")
    assert legacy.success.angle == 0.2 and legacy.box.x_range == [-0.05, 0.05]
    assert legacy.box.flip_probability == 0.3
    assert legacy.observation.object_velocity == "estimated"


def test_plant_constants_live_in_the_scenario():
    """Corner spheres, hydroelastic resolution, bin floor, depth margin and headroom are
    scenario keys that change the plant (nothing physical is hard-coded)."""
    from pydrake.systems.framework import DiagramBuilder

    from fingergym.sim.params import nominal_params
    from fingergym.sim.plant import add_world

    def geometry(s):
        builder = DiagramBuilder()
        h = add_world(builder, s, nominal_params(s))
        inspector = h.scene_graph.model_inspector()
        out = {}
        for body in (h.plant.world_body(), h.plant.GetBodyByName("box")):
            for g in h.plant.GetCollisionGeometriesForBody(body):
                shape = inspector.GetShape(g)
                out[inspector.GetName(g)] = (type(shape).__name__, str(shape),
                                             inspector.GetPoseInFrame(g).translation().tolist())
        return out

    s = load_scenario()
    base = geometry(s)
    for key, value in (("box.corner_radius", 0.004), ("bin.floor_thickness", 0.08),
                       ("bin.depth_margin", 0.1)):
        assert geometry(s.replace(**{key: value})) != base, key
    assert ActionScaling.from_scenario(s.replace(**{"bin.headroom": 0.05})).high[1] == \
        pytest.approx(0.26)

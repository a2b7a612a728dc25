"""The scenario file: loaded once, validated, errors name the file and the key."""

from pathlib import Path

import pytest
import yaml

from fingergym.scenario import (
    Scenario,
    ScenarioError,
    default_scenario_path,
    load_scenario,
    to_dict,
    workspace_bounds,
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
    assert to_dict(s) == to_dict(Scenario())


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
        ("randomization.box_x", [-0.3, 0.1], "randomization.box_x"),
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
    lo, hi = workspace_bounds(s)
    r = s.finger.radius
    assert lo[0] >= s.bin.wall_x[0] + r and hi[0] <= s.bin.wall_x[1] - r
    assert lo[0] >= s.finger.x_limits[0] and hi[0] <= s.finger.x_limits[1]
    assert lo[1] >= s.bin.floor_z + r and hi[1] <= s.finger.z_limits[1]

"""Named vector layouts, robot model files and the plug-in registry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fingergym.layout import Layout, LayoutError
from fingergym.registry import RegistryError, robot_class, task_class
from fingergym.robot_model import RobotModel, RobotModelError
from fingergym.scenario import load_scenario


def test_layout_names_groups_and_json_round_trip():
    lay = Layout(["a", "b", "c", "d"], groups={"ab": ["a", "b"], "db": ["d", "b"]})
    assert lay.size == 4 and lay.index("c") == 2
    assert lay["ab"] == slice(0, 2) and list(lay["db"]) == [3, 1]
    v = np.arange(4.0)
    assert lay.get(v, "c") == 2.0 and list(lay.get(v, "db")) == [3.0, 1.0]
    batch = np.arange(8.0).reshape(2, 4)
    assert list(lay.get(batch, "c")) == [2.0, 6.0]
    lay.set(v, "ab", [10.0, 11.0])
    assert list(v) == [10.0, 11.0, 2.0, 3.0]
    assert lay.as_dict(v)["b"] == 11.0 and list(lay.vector({"a": 1, "b": 2, "c": 3, "d": 4})) \
        == [1, 2, 3, 4]
    again = Layout.from_json(lay.to_json())
    assert again == lay and hash(again) == hash(lay)
    assert Layout.from_dict(["a", "b", "c", "d"]).same_names(lay)  # a plain name list (old files)
    assert json.loads(lay.to_json())["groups"]["db"] == ["d", "b"]


@pytest.mark.parametrize("build, message", [
    (lambda: Layout(["a", "a"]), "duplicate"),
    (lambda: Layout(["a"], groups={"g": ["z"]}), "unknown elements"),
    (lambda: Layout(["a"], groups={"a": ["a"]}), "name of an element"),
    (lambda: Layout(["a"]).index("b"), "no element 'b'"),
    (lambda: Layout(["a", "b"]).get(np.zeros(3), "a"), "shape"),
    (lambda: Layout.from_json("{"), "not JSON"),
    (lambda: Layout.from_dict({"nam": []}), "needs 'names'"),
])
def test_layout_errors_are_one_line(build, message):
    with pytest.raises(LayoutError, match=message) as err:
        build()
    assert "\n" not in str(err.value)


def test_robot_model_reads_joints_limits_and_controller():
    from fingergym.robots.finger import Finger

    m = RobotModel.load(Finger.model_file, Finger.controllers_file)
    assert m.command_joints == ("finger_x", "finger_z") and m.controller_name == "finger_controller"
    assert list(m.limits.lower) == [-0.3, 0.0] and list(m.limits.upper) == [0.3, 0.5]
    assert np.all(m.limits.velocity > 0)


def test_robot_model_errors_name_the_file(tmp_path):
    bad = tmp_path / "r.urdf"
    bad.write_text("<robot name='r'><joint name='j' type='prismatic'/></robot>")
    with pytest.raises(RobotModelError, match=r"r\.urdf: no <ros2_control> block"):
        RobotModel.load(bad)
    bad.write_text("<robot name='r'><joint name='j' type='prismatic'/><ros2_control>"
                   "<joint name='j'><command_interface name='position'/></joint>"
                   "</ros2_control></robot>")
    with pytest.raises(RobotModelError, match="joint 'j' has no <limit>"):
        RobotModel.load(bad)


FINGER_SDF = """<?xml version="1.0"?>
<sdf version="1.9">
  <model name="sdf_finger">
    <link name="carriage"><inertial><mass>0.1</mass></inertial></link>
    <link name="finger">
      <inertial><mass>1.0</mass><inertia><ixx>4e-5</ixx><iyy>4e-5</iyy><izz>4e-5</izz>
        <ixy>0</ixy><ixz>0</ixz><iyz>0</iyz></inertia></inertial>
      <collision name="finger"><geometry><sphere><radius>0.01</radius></sphere></geometry>
      </collision>
      <visual name="finger"><geometry><sphere><radius>0.01</radius></sphere></geometry></visual>
    </link>
    <joint name="finger_x" type="prismatic"><parent>world</parent><child>carriage</child>
      <axis><xyz>1 0 0</xyz><limit><lower>-0.3</lower><upper>0.3</upper><velocity>2.0</velocity>
      <effort>1e6</effort></limit></axis></joint>
    <joint name="finger_z" type="prismatic"><parent>carriage</parent><child>finger</child>
      <axis><xyz>0 0 1</xyz><limit><lower>0.0</lower><upper>0.5</upper><velocity>3.0</velocity>
      <effort>1e6</effort></limit></axis></joint>
  </model>
</sdf>
"""


def test_an_sdf_robot_takes_its_joints_from_controllers_yaml_and_runs_the_task(tmp_path):
    """A robot described by an SDF: limits from the file, commanded joints (and order) from
    controllers.yaml (SDF has no <ros2_control> block); Drake parses it and the task runs."""
    import fingergym
    from fingergym.robots.finger import HERE

    (tmp_path / "finger.sdf").write_text(FINGER_SDF)
    (tmp_path / "controllers.yaml").write_text(
        (HERE / "controllers.yaml").read_text().replace("finger_controller", "sdf_controller"))
    model = RobotModel.load(tmp_path / "finger.sdf", tmp_path / "controllers.yaml")
    assert model.name == "sdf_finger" and model.controller_name == "sdf_controller"
    assert model.command_joints == ("finger_x", "finger_z") == model.state_joints
    np.testing.assert_array_equal(model.limits.velocity, [2.0, 3.0])
    np.testing.assert_array_equal(model.limits.upper, [0.3, 0.5])
    with pytest.raises(RobotModelError, match="commanded joints come from controllers.yaml"):
        RobotModel.load(tmp_path / "finger.sdf")
    (tmp_path / "sdf_finger.py").write_text(
        "from pathlib import Path\nfrom fingergym.robots.finger import Finger\n"
        "class SdfFinger(Finger):\n    name = 'sdf_finger'\n"
        "    model_file = Path(__file__).parent / 'finger.sdf'\n"
        "    controllers_file = Path(__file__).parent / 'controllers.yaml'\n"
        "    def __init__(self, scenario):\n"
        "        super(Finger, self).__init__(scenario)\n        self.radius = 0.01\n")
    scenario = load_scenario().replace(robot=f"{tmp_path / 'sdf_finger.py'}:SdfFinger")
    env = fingergym.make_env(scenario)
    env.reset(seed=0)
    *_, info = env.step(np.array([0.5, -0.5], dtype=np.float32))
    assert env.robot.model.path.suffix == ".sdf" and np.isfinite(info["angle_from_vertical"])
    env.close()


def test_registry_resolves_names_module_refs_and_files(tmp_path):
    from fingergym.interfaces import Robot
    from fingergym.robots.finger import Finger

    assert robot_class("finger") is Finger
    assert robot_class("fingergym.robots.finger:Finger") is Finger
    plugin = tmp_path / "my_robot.py"
    plugin.write_text("from fingergym.robots.finger import Finger\n"
                      "class Other(Finger):\n    name = 'other'\n")
    other = robot_class(f"{plugin}:Other")
    assert issubclass(other, Robot) and other.name == "other"
    with pytest.raises(RegistryError, match="unknown robot 'nope'"):
        robot_class("nope")
    with pytest.raises(RegistryError, match="cannot import"):
        task_class("no_such_module_xyz:Task")
    with pytest.raises(RegistryError, match="not a Task subclass"):
        task_class("fingergym.robots.finger:Finger")


def test_task_option_resolves_gym_ids_and_task_names(tmp_path):
    import fingergym
    from fingergym.registry import scenario_path
    from fingergym.scenario import ScenarioError

    assert scenario_path("fingergym/BoxFlipUp-v0", None) is None  # the shipped scenario
    assert scenario_path("box_flipup", None) is None
    assert scenario_path(None, tmp_path / "s.yaml") == tmp_path / "s.yaml"  # --scenario wins
    mine = tmp_path / "mine.yaml"
    mine.write_text("task: box_flipup\nrobot: finger\nbox: {mass: 2.0}\n")
    fingergym.register_env("test/HeavyBox-v0", mine)
    assert scenario_path("test/HeavyBox-v0", None) == mine
    assert fingergym.make_env(scenario_path("test/HeavyBox-v0", None)).scenario.box.mass == 2.0
    with pytest.raises(ScenarioError, match="no registered gym id or task 'nope'"):
        scenario_path("nope", None)

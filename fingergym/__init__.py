"""fingergym: train a contact-rich policy in Drake, deploy it unchanged over ROS 2, replay it.

Tasks and robots are plug-ins (:mod:`fingergym.interfaces`, :mod:`fingergym.registry`); the
shipped pair is the box flip-up on the point finger.

>>> import fingergym, gymnasium
>>> env = gymnasium.make("fingergym/BoxFlipUp-v0")      # or fingergym.make_env(...)
"""

from importlib.metadata import PackageNotFoundError, version

from fingergym.env import FingerGymEnv, make_env
from fingergym.layout import Layout
from fingergym.registry import discover, register_env, register_robot, register_task
from fingergym.scenario import Scenario, ScenarioError, load_scenario

try:
    __version__ = version("fingergym")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

ENV_ID = "fingergym/BoxFlipUp-v0"  # the default gym id (tasks/box_flipup declares it)
discover()  # every folder of tasks/ and robots/, and installed plug-ins (fingergym.registry)

__all__ = [
    "ENV_ID",
    "FingerGymEnv",
    "Layout",
    "Scenario",
    "ScenarioError",
    "__version__",
    "load_scenario",
    "make_env",
    "register_env",
    "register_robot",
    "register_task",
]

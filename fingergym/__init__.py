"""fingergym: train a box flip-up policy in Drake, deploy it unchanged over ROS 2, replay it.

>>> import fingergym, gymnasium
>>> env = gymnasium.make("fingergym/BoxFlipUp-v0")      # or fingergym.make_env(...)
"""

from importlib.metadata import PackageNotFoundError, version

import gymnasium

from fingergym.env import FingerGymEnv, make_env
from fingergym.scenario import Scenario, ScenarioError, load_scenario

try:
    __version__ = version("fingergym")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

ENV_ID = "fingergym/BoxFlipUp-v0"
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="fingergym.env:make_env")

__all__ = [
    "ENV_ID",
    "FingerGymEnv",
    "Scenario",
    "ScenarioError",
    "__version__",
    "load_scenario",
    "make_env",
]

"""The training config: PPO hyper-parameters, env options, warm start, evaluation, in one YAML.

Loaded and validated like the scenario (:mod:`fingergym.scenario`): an unknown key, a wrong type
or an out-of-range value raises :class:`fingergym.scenario.ScenarioError` naming the file and
the dotted key. The shipped default is ``configs/train.yaml``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fingergym.scenario import Scenario, ScenarioError, _build, _f, as_scenario, read_yaml

DEFAULT_TRAIN_CONFIG = "train.yaml"


@dataclass
class EnvConfig:
    scenario: str = _f("", doc="scenario YAML path, or a task name / gym id (its scenario); "
                       "empty: the shipped configs/scenario.yaml")
    n_envs: int = _f(0, 0, 1024, doc="parallel envs; 0: one per CPU core of this machine")
    backend: str = _f("subproc", choices=("subproc", "ray"),
                      doc="subproc: SubprocVecEnv on this machine; ray: Ray actors on a cluster")
    ray_address: str = _f("", doc="ray backend: cluster address (auto, HOST:PORT, "
                                  "ray://HOST:10001); empty: start a local Ray")
    envs_per_worker: int = _f(1, 1, 1024, doc="ray backend: envs per Ray actor (one call steps "
                                              "them all)")
    randomize: bool = True
    # Extra dotted-key overrides of the scenario for TRAINING only, e.g.
    # {"box.x_range": [-0.05, 0.05]} (evaluation always uses the unmodified scenario).
    overrides: dict = field(default_factory=dict)


@dataclass
class PPOConfig:
    learning_rate: float = _f(1e-4, 0.0, 1.0, lo_open=True)
    lr_schedule: str = _f("linear", choices=("constant", "linear"),
                          doc="linear: decays to 0 at total_timesteps")
    n_steps: int = _f(1024, 8, 1_000_000, doc="rollout steps per env per update")
    batch_size: int = _f(256, 2, 1_000_000)
    n_epochs: int = _f(5, 1, 1000)
    gamma: float = _f(0.99, 0.0, 1.0)
    gae_lambda: float = _f(0.95, 0.0, 1.0)
    clip_range: float = _f(0.1, 0.0, 10.0, lo_open=True)
    ent_coef: float = _f(0.0, 0.0, 1.0)
    vf_coef: float = _f(0.5, 0.0, 10.0)
    max_grad_norm: float = _f(0.5, 0.0, 1000.0, lo_open=True)
    target_kl: float = _f(0.03, 0.0, 10.0, doc="0: off")
    log_std_init: float = _f(-1.5, -10.0, 5.0, doc="initial log std of the Gaussian policy")
    use_sde: bool = False  # generalized state-dependent exploration (gSDE): correlated noise
    sde_sample_freq: int = _f(-1, -1, 1_000_000, doc="steps between gSDE noise draws; -1: "
                                                    "once per rollout")


@dataclass
class PolicyConfig:
    pi: list[int] = _f([64, 64], point=True, doc="actor hidden sizes (two layers)")
    vf: list[int] = _f([64, 64], point=True, doc="critic hidden sizes (two layers)")
    activation: str = _f("tanh", choices=("tanh", "relu"))
    bounded_mean: bool = _f(False, doc="tanh on the Gaussian's mean: it stays inside the "
                            "action bounds, so exploration never dies at a bound "
                            "(fingergym.policies.bounded)")


@dataclass
class NormalizeConfig:
    obs: bool = True
    reward: bool = True
    clip_obs: float = _f(10.0, 0.0, 1e6, lo_open=True)
    clip_reward: float = _f(10.0, 0.0, 1e6, lo_open=True)


@dataclass
class WarmStartConfig:
    """Behaviour cloning from the task's scripted expert before PPO (0 episodes: off; a task
    without an expert needs 0)."""

    episodes: int = _f(400, 0, 100_000, doc="expert episodes (0: no warm start)")
    epochs: int = _f(30, 1, 10_000)
    batch_size: int = _f(256, 2, 1_000_000)
    learning_rate: float = _f(1e-3, 0.0, 1.0, lo_open=True)
    log_std: float = _f(-2.0, -10.0, 5.0, doc="policy log std after cloning")
    seed: int = _f(1_000_000, 0, 2**31 - 1, doc="first episode seed of the expert data")
    successful_only: bool = _f(False, doc="clone the actor on the episodes the expert "
                               "succeeded in only (the critic learns from all of them)")
    critic_updates: int = _f(0, 0, 100_000, doc="the first PPO updates after the warm start "
                             "train the critic only (policies/critic_warmup.py)")
    dagger_rounds: int = _f(0, 0, 100, doc="planner: DAgger rounds after cloning (the clone "
                            "drives, the planner labels its states, the clone is refitted)")
    dagger_episodes: int = _f(50, 1, 100_000, doc="planner: episodes per DAgger round")
    cache: bool = _f(True, doc="planner: reuse the same demonstrations planned by an earlier "
                                "run (fingergym.planning.demo_cache; $FINGERGYM_CACHE or "
                                "~/.cache/fingergym)")
    expert: str = _f("task", choices=("task", "planner"),
                     doc="task: the task's scripted expert; planner: closed-loop smoothed-iLQR "
                         "demonstrations (fingergym.planning, ~20 s of planning per episode)")


@dataclass
class PriorConfig:
    """Task-free actor start (:mod:`fingergym.policies.prior`): "hold where you are"."""

    hold_steps: int = _f(0, 0, 10_000_000, doc="random-action env steps to fit it on (0: off)")
    epochs: int = _f(30, 1, 10_000)
    batch_size: int = _f(256, 2, 1_000_000)
    learning_rate: float = _f(1e-3, 0.0, 1.0, lo_open=True)
    seed: int = _f(2_000_000, 0, 2**31 - 1, doc="env seeds of its rollouts (never evaluated)")


@dataclass
class CurriculumConfig:
    """Reset curriculum (:mod:`fingergym.policies.curriculum`); off when it has no keys."""

    task_starts: bool = _f(False, doc="start from the task's own easy starts "
                           "(Task.easy_starts); `keys` add to or override them")
    # dotted scenario key -> its easiest value (difficulty 0); difficulty 1 = the training
    # scenario's own value, e.g. {"box.tilt_range": [1.25, 1.45]}
    keys: dict = field(default_factory=dict)
    start: float = _f(0.0, 0.0, 1.0, doc="initial difficulty")
    step: float = _f(0.1, 0.0, 1.0, lo_open=True, doc="difficulty added at each promotion")
    promote_at: float = _f(0.6, 0.0, 1.0, doc="training success rate that promotes")
    window: int = _f(40, 1, 100_000, doc="episodes at the current difficulty per decision")
    replay: float = _f(0.2, 0.0, 1.0, doc="share of episodes restarted at an easier difficulty")


@dataclass
class ShapingConfig:
    """Potential-based reward shaping for training (:mod:`fingergym.policies.shaping`)."""

    potential: str = _f("", doc="one of the task's potentials by name (Task.potentials); '': off")
    scale: float = _f(1.0, 0.0, 1e6, doc="multiplies the potential")


@dataclass
class EvalConfig:
    freq: int = _f(20_000, 0, 10**9, doc="env steps between evaluations (0: only at the end)")
    episodes: int = _f(20, 1, 100_000)
    seed: int = _f(10_000, 0, 2**31 - 1, doc="first held-out episode seed")


@dataclass
class TrainConfig:
    seed: int = _f(0, 0, 2**31 - 1)
    total_timesteps: int = _f(400_000, 1, 10**10)
    checkpoint_freq: int = _f(100_000, 0, 10**10, doc="env steps between checkpoints (0: off)")
    torch_threads: int = _f(1, 1, 64)
    env: EnvConfig = field(default_factory=EnvConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    source: str = field(default="<defaults>", compare=False, metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source", None)
        return data

    def digest(self) -> str:
        """sha256 of the canonical JSON of this config (hex)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with dotted-key overrides, e.g. ``replace(**{"ppo.n_steps": 64})``."""
        data = self.to_dict()
        for key, value in changes.items():
            node = data
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        return config_from_dict(data, source=f"{self.source} (overridden)")

    def train_scenario(self) -> Scenario:
        """The scenario for training: the env's scenario with ``env.overrides`` applied."""
        scenario = as_scenario(self._scenario_path())
        try:
            return scenario.replace(**self.env.overrides) if self.env.overrides else scenario
        except (KeyError, TypeError) as e:
            raise ScenarioError(f"{self.source}: env.overrides: unknown scenario key {e}") from e

    def eval_scenario(self) -> Scenario:
        """The scenario for evaluation: never overridden (full default randomization)."""
        return as_scenario(self._scenario_path())

    def _scenario_path(self) -> str | Path | None:
        return scenario_ref_path(self.env.scenario, f"{self.source}: env.scenario")

    def curriculum_keys(self) -> dict[str, Any]:
        """The reset curriculum's keys: the task's easy starts (``curriculum.task_starts``)
        updated with ``curriculum.keys``; empty: no curriculum."""
        c = self.curriculum
        starts = self.train_scenario().plugins()[0].easy_starts() if c.task_starts else {}
        return {**starts, **c.keys}


def _check(cfg: TrainConfig, source: str) -> None:
    for name in ("pi", "vf"):
        sizes = getattr(cfg.policy, name)
        if any(s < 1 for s in sizes):
            raise ScenarioError(f"{source}: policy.{name}: layer sizes must be >= 1")
    if not isinstance(cfg.env.overrides, dict):
        raise ScenarioError(f"{source}: env.overrides: expected a mapping")
    if cfg.env.backend != "ray" and (cfg.env.ray_address or cfg.env.envs_per_worker != 1):
        key = "ray_address" if cfg.env.ray_address else "envs_per_worker"
        raise ScenarioError(f"{source}: env.{key}: only used with env.backend: ray")
    if cfg.env.backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ScenarioError(f"{source}: env.backend: ray is not installed "
                            f"(pip install 'fingergym[ray]')")
    if cfg.env.n_envs and cfg.ppo.batch_size > cfg.ppo.n_steps * cfg.env.n_envs:
        raise ScenarioError(f"{source}: ppo.batch_size: {cfg.ppo.batch_size} is larger than a "
                            f"rollout (ppo.n_steps x env.n_envs)")


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> TrainConfig:
    """Validate a nested dict into a :class:`TrainConfig` (errors name ``source`` and key)."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: top level: expected a mapping, got {data!r}")
    data = json.loads(json.dumps(data))  # deep copy, plain types
    # The scenario validator knows numbers, strings and lists; check bool/dict leaves here.
    for section, key in (("env", "randomize"), ("normalize", "obs"), ("normalize", "reward"),
                         ("ppo", "use_sde")):
        value = (data.get(section) or {}).get(key) if isinstance(data.get(section), dict) else None
        if value is not None and not isinstance(value, bool):
            raise ScenarioError(f"{source}: {section}.{key}: expected true/false, got {value!r}")
    for section, key in (("env", "overrides"), ("curriculum", "keys")):
        node = data.get(section)
        value = node.get(key) if isinstance(node, dict) else None
        if value is None and isinstance(node, dict) and key in node:
            node[key] = {}
        elif value is not None and not isinstance(value, dict):
            raise ScenarioError(f"{source}: {section}.{key}: expected a mapping, got {value!r}")
    cfg = _build(TrainConfig, data, source, "")
    cfg.source = source
    _check(cfg, source)
    if cfg.env.overrides:
        try:
            cfg.train_scenario()
        except ScenarioError as e:
            raise ScenarioError(f"{source}: env.overrides: {e}") from e
    if cfg.curriculum_keys():
        _check_curriculum(cfg, source)
    if cfg.warm_start.episodes > 0 and cfg.warm_start.expert == "planner":
        from fingergym.planning.demos import cannot_plan

        why = cannot_plan(cfg.train_scenario())
        if why:
            raise ScenarioError(f"{source}: warm_start.expert: planner: {why}")
    if cfg.warm_start.dagger_rounds and cfg.warm_start.expert != "planner":
        raise ScenarioError(f"{source}: warm_start.dagger_rounds: only with warm_start.expert: "
                            f"planner (the labeller)")
    if cfg.shaping.potential:
        task, _ = cfg.train_scenario().plugins()
        if cfg.shaping.potential not in task.potentials():
            raise ScenarioError(f"{source}: shaping.potential: {cfg.shaping.potential!r} is not "
                                f"a potential of task {task.name!r} (it has: "
                                f"{sorted(task.potentials())})")
    return cfg


def _check_curriculum(cfg: TrainConfig, source: str) -> None:
    """Every curriculum key names a scenario value, and every difficulty gives a valid one."""
    from fingergym.policies.curriculum import scenario_at, scenario_value

    base = cfg.train_scenario()
    keys = cfg.curriculum_keys()
    for key, easy in keys.items():
        where = f"{source}: curriculum.keys.{key}"
        try:
            full = scenario_value(base, key)
        except (AttributeError, KeyError):
            raise ScenarioError(f"{where}: unknown scenario key") from None
        numbers = (int, float)
        ok = (isinstance(full, list) and isinstance(easy, list) and len(easy) == len(full)
              and all(isinstance(v, numbers) and not isinstance(v, bool) for v in easy)) or (
            isinstance(full, numbers) and isinstance(easy, numbers)
            and not isinstance(full, bool) and not isinstance(easy, bool))
        if not ok:
            raise ScenarioError(f"{where}: the easy value {easy!r} must have the form of the "
                                f"scenario's {full!r}")
    for d in (0.0, 0.5):
        try:
            scenario_at(base, keys, d)
        except (ScenarioError, KeyError, TypeError) as e:
            raise ScenarioError(f"{source}: curriculum.keys at difficulty {d}: {e}") from e


def scenario_ref_path(ref: str, where: str = "env.scenario") -> str | None:
    """A scenario reference: a YAML path, or a registered task name or gym id (its scenario,
    wherever the package is installed); empty: ``None`` (the shipped default)."""
    if not ref or ref.endswith((".yaml", ".yml")):
        return ref or None
    from fingergym.registry import RegistryError, scenario_of

    try:
        return scenario_of(ref) or None
    except RegistryError as e:
        raise ScenarioError(f"{where}: {e}") from e


def default_config_path() -> Path:
    """The training config shipped with the package (``configs/train.yaml``)."""
    return Path(str(resources.files("fingergym.configs").joinpath(DEFAULT_TRAIN_CONFIG)))


def load_train_config(path: str | Path | None = None) -> TrainConfig:
    """Load and validate a training config YAML (``None``: the shipped default)."""
    path = Path(path) if path is not None else default_config_path()
    return config_from_dict(read_yaml(path, "training config"), source=str(path))

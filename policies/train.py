"""``fingergym train``: PPO (stable-baselines3) on a randomized task (default: the box flip-up).

A run directory holds everything a run produced::

    config.yaml  meta.json  train.log?  tb/  checkpoints/step_<n>.zip (+ normalization)
    best.zip  final.zip (+ *_vecnormalize.pkl, *_normalize.json)  eval.csv  eval.json
    learning_curve.png  summary.json

Resume with ``fingergym train --resume RUN_DIR`` (or a checkpoint ``.zip``); Ctrl-C or SIGTERM
saves an ``interrupted`` snapshot and exits cleanly, at any phase.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fingergym.policies.config import TrainConfig, load_train_config, scenario_ref_path
from fingergym.scenario import ScenarioError

RUNS_DIR = Path("runs")
EXPERT_FREE_CONFIG = "train_expertfree.yaml"  # a task without an expert the planner cannot plan
PLANNER_CONFIG = "train_planner.yaml"  # a task without an expert that fingergym.planning plans


# ---------------------------------------------------------------------------- environments
def _make_env(cfg: TrainConfig):
    """One training env: the training scenario, wrapped by the reset curriculum and the reward
    shaping if the config asks for them."""
    from fingergym.env import make_env

    env = make_env(cfg.train_scenario(), randomize=cfg.env.randomize)
    c = cfg.curriculum
    keys = cfg.curriculum_keys()
    if keys:
        from fingergym.policies.curriculum import CurriculumEnv

        env = CurriculumEnv(env, cfg.train_scenario(), keys, difficulty=c.start,
                            replay=c.replay)
    if cfg.shaping.potential:
        from fingergym.policies.shaping import PotentialShaping

        potential = env.unwrapped.task.potentials()[cfg.shaping.potential]
        env = PotentialShaping(env, potential, gamma=cfg.ppo.gamma, scale=cfg.shaping.scale)
    return env


def _make_worker_env(cfg: TrainConfig):
    """Env factory run inside each worker process (SubprocVecEnv or Ray actor): one torch
    thread if torch is loaded, SIGINT and SIGTERM ignored (the main process handles both and
    closes the workers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "torch" in sys.modules:  # a Ray env worker does not import torch at all
        sys.modules["torch"].set_num_threads(1)
    return _make_env(cfg)


def make_vec_env(cfg: TrainConfig, n_envs: int, *, subprocess_envs: bool = True):
    """The training VecEnv: ``n_envs`` workers (VecMonitor), seeded with ``cfg.seed``.

    ``env.backend: ray`` puts them in Ray actors (:class:`RayVecEnv`, any node of the cluster
    at ``env.ray_address``); otherwise SubprocVecEnv (DummyVecEnv without ``subprocess_envs``).
    """
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    fn = functools.partial(_make_worker_env, cfg)
    if cfg.env.backend == "ray":
        from fingergym.policies.ray_vec_env import RayVecEnv

        venv = RayVecEnv([fn] * n_envs, envs_per_worker=cfg.env.envs_per_worker,
                         address=cfg.env.ray_address or None)
    elif subprocess_envs and n_envs > 1:
        venv = SubprocVecEnv([fn] * n_envs)
    else:
        venv = DummyVecEnv([functools.partial(_make_env, cfg)] * n_envs)
    venv = VecMonitor(venv, info_keywords=("is_success",))
    venv.seed(cfg.seed)
    return venv


# ---------------------------------------------------------------------------- run metadata
def git_commit() -> str:
    """``<sha>[-dirty]`` of the source tree this package runs from, or ``unknown``."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10).stdout
        return (sha + ("-dirty" if dirty.strip() else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_run_files(run_dir: Path, cfg: TrainConfig, argv: list[str]) -> dict:
    """Copy the resolved config into the run dir with version/commit metadata."""
    import stable_baselines3
    import torch

    from fingergym import __version__

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(
        f"# resolved training config (from {cfg.source})\n"
        + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    meta = {"fingergym_version": __version__, "git_commit": git_commit(),
            "config_sha256": cfg.digest(), "config_source": cfg.source,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "argv": argv, "python": platform.python_version(),
            "torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__,
            "host_cpus": os.cpu_count()}
    meta_path = run_dir / "meta.json"
    history = json.loads(meta_path.read_text()).get("history", []) if meta_path.exists() else []
    meta["history"] = history + [{"started": meta["started"], "argv": argv,
                                  "git_commit": meta["git_commit"]}]
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


def latest_snapshot(path: Path) -> Path:
    """A checkpoint ``.zip`` as given, or the newest snapshot of a run directory."""
    path = Path(path)
    if path.suffix == ".zip":
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such checkpoint")
        return path
    candidates = [p for p in [*path.glob("checkpoints/step_*.zip"), path / "interrupted.zip",
                              path / "final.zip"] if p.exists()]
    if not candidates:
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    return max(candidates, key=lambda p: p.stat().st_mtime)


def normalization_of(snapshot: Path, cfg: TrainConfig) -> Path | None:
    """The snapshot's VecNormalize file (None if the config normalizes nothing). Resuming a
    normalizing run without it would feed the policy raw observations (it then keeps still:
    seen once, after a snapshot was cut short while saving), so that is an error."""
    if not (cfg.normalize.obs or cfg.normalize.reward):
        return None
    pkl = Path(str(snapshot.with_suffix("")) + "_vecnormalize.pkl")
    if not pkl.exists():
        raise ScenarioError(f"{snapshot}: its normalization {pkl.name} is missing (the run was "
                            f"stopped while saving it?): resume from another snapshot, e.g. "
                            f"{run_dir_of(snapshot) / 'best.zip'} or one in checkpoints/")
    return pkl


def run_dir_of(snapshot: Path) -> Path:
    return snapshot.parent.parent if snapshot.parent.name == "checkpoints" else snapshot.parent


# ---------------------------------------------------------------------------- training
def _linear(initial: float, progress_remaining: float) -> float:
    return initial * progress_remaining


def wrap_normalize(cfg: TrainConfig, venv):
    """``venv`` in the config's VecNormalize, or None when it normalizes nothing."""
    from stable_baselines3.common.vec_env import VecNormalize

    n = cfg.normalize
    if not (n.obs or n.reward):
        return None
    return VecNormalize(venv, norm_obs=n.obs, norm_reward=n.reward, clip_obs=n.clip_obs,
                        clip_reward=n.clip_reward, gamma=cfg.ppo.gamma)


def build_model(cfg: TrainConfig, venv, run_dir: Path):
    """A fresh PPO model on ``venv`` from the config."""
    import torch
    from stable_baselines3 import PPO

    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[cfg.policy.activation]
    p = cfg.ppo
    # SB3 calls a schedule with the remaining progress (1 at the start, 0 at the end).
    lr = (p.learning_rate if p.lr_schedule == "constant"
          else functools.partial(_linear, p.learning_rate))
    policy: Any = "MlpPolicy"
    if cfg.policy.bounded_mean:
        if p.use_sde:
            raise ScenarioError(f"{cfg.source}: policy.bounded_mean: not with ppo.use_sde")
        from fingergym.policies.bounded import BoundedMeanPolicy

        policy = BoundedMeanPolicy
    return PPO(policy, venv, learning_rate=lr, n_steps=p.n_steps,
               batch_size=p.batch_size, n_epochs=p.n_epochs, gamma=p.gamma,
               gae_lambda=p.gae_lambda, clip_range=p.clip_range, ent_coef=p.ent_coef,
               vf_coef=p.vf_coef, max_grad_norm=p.max_grad_norm,
               target_kl=p.target_kl or None, use_sde=p.use_sde,
               sde_sample_freq=p.sde_sample_freq, seed=cfg.seed, device="cpu", verbose=0,
               tensorboard_log=str(run_dir / "tb"),
               policy_kwargs={"net_arch": {"pi": list(cfg.policy.pi), "vf": list(cfg.policy.vf)},
                              "activation_fn": act, "log_std_init": p.log_std_init})


def train(cfg: TrainConfig, run_dir: Path, *, resume: Path | None = None,
          progress_bar: bool = True, argv: list[str] | None = None,
          subprocess_envs: bool = True, log=print) -> dict:
    """Train (or resume) a run; returns the summary also written to ``summary.json``.

    Every phase shows progress (``progress_bar``); the first SIGINT or SIGTERM stops the run at
    the next env step or evaluation episode, saves what exists as ``interrupted`` and returns
    with ``summary["interrupted"]`` set (see :mod:`fingergym.policies.progress`).
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.vec_env import VecNormalize

    from fingergym.policies.callbacks import (
        HeldOutEvalCallback,
        SnapshotCallback,
        plot_learning_curve,
        save_snapshot,
    )
    from fingergym.policies.progress import RunControl, StepTicker
    from fingergym.policies.ray_vec_env import EnvWorkerLost  # no Ray import
    from fingergym.policies.warmstart import warm_start

    torch.set_num_threads(cfg.torch_threads)
    n_envs = cfg.env.n_envs or os.cpu_count() or 1
    meta = write_run_files(run_dir, cfg, argv or [])
    t_start = time.perf_counter()
    if resume is not None and (run_dir / "summary.json").exists():
        # the wall clock continues from where the previous start ended
        t_start -= json.loads((run_dir / "summary.json").read_text()).get("wall_s") or 0.0

    model = vecnorm = evaluator = warm = None
    interrupted = False
    error = None
    venv = None
    with RunControl(progress=progress_bar, log=log) as control:
        try:
            try:
                with control.phase(f"starting {n_envs} env worker(s)", unit=""):
                    venv = StepTicker(_start_workers(cfg, n_envs, subprocess_envs, control),
                                      control)
                if resume is not None:
                    pkl = normalization_of(resume, cfg)
                    vecnorm = VecNormalize.load(str(pkl), venv) if pkl else None
                    model = PPO.load(resume, env=vecnorm or venv, device="cpu",
                                     tensorboard_log=str(run_dir / "tb"))
                    control.log(f"resumed from {resume} at {model.num_timesteps} steps")
                else:
                    vecnorm = wrap_normalize(cfg, venv)
                    model = build_model(cfg, vecnorm or venv, run_dir)
                    pr = cfg.prior
                    if pr.hold_steps > 0:
                        from fingergym.policies.prior import hold_prior

                        with control.phase("hold prior (random-action steps, then fitting)",
                                           total=pr.hold_steps):
                            prior = hold_prior(model, vecnorm, steps=pr.hold_steps,
                                               epochs=pr.epochs, batch_size=pr.batch_size,
                                               lr=pr.learning_rate, seed=pr.seed,
                                               log=control.log)
                        (run_dir / "prior.json").write_text(json.dumps(prior, indent=1))
                    w = cfg.warm_start
                    if w.episodes > 0:
                        per_episode = cfg.train_scenario().episode.steps
                        steps = (w.episodes + w.dagger_rounds * w.dagger_episodes
                                 if w.expert == "planner"  # no VecEnv rounding
                                 else -(-w.episodes // n_envs) * n_envs) * per_episode

                        def planner_progress(env_steps: int, success: bool) -> None:
                            control.tick(env_steps)  # and stops here if asked

                        with control.phase("warm start (expert episodes, then cloning)",
                                           total=steps):
                            warm = warm_start(model, vecnorm, cfg.train_scenario(),
                                              episodes=w.episodes, epochs=w.epochs,
                                              batch_size=w.batch_size, lr=w.learning_rate,
                                              log_std=w.log_std, seed=w.seed,
                                              expert=w.expert,
                                              successful_only=w.successful_only,
                                              cache=w.cache,
                                              dagger_rounds=w.dagger_rounds,
                                              dagger_episodes=w.dagger_episodes,
                                              log=control.log,
                                              workers=min(n_envs, os.cpu_count() or 1),
                                              progress=planner_progress)
                        (run_dir / "warm_start.json").write_text(json.dumps(warm, indent=1))
                e = cfg.eval
                evaluator = HeldOutEvalCallback(run_dir, cfg.eval_scenario(), vecnorm,
                                                freq=e.freq, episodes=e.episodes, seed=e.seed,
                                                t_start=t_start, phase=control.phase)
                evaluator.verbose = 1
                callbacks = [evaluator]
                c = cfg.curriculum
                if cfg.curriculum_keys():
                    from fingergym.policies.curriculum import CurriculumCallback

                    callbacks.append(CurriculumCallback(
                        run_dir, start=c.start, step=c.step, promote_at=c.promote_at,
                        window=c.window, t_start=t_start, log=control.log))
                if cfg.checkpoint_freq:
                    callbacks.append(SnapshotCallback(run_dir, cfg.checkpoint_freq, vecnorm))
                if warm is not None and cfg.warm_start.critic_updates:
                    from fingergym.policies.critic_warmup import CriticWarmupCallback

                    callbacks.append(CriticWarmupCallback(cfg.warm_start.critic_updates,
                                                          log=control.log))
                if resume is None and warm is not None:
                    # Measure the clone before PPO touches it (step 0 of the learning curve).
                    evaluator.init_callback(model)
                    evaluator.run_eval()
                remaining = cfg.total_timesteps - model.num_timesteps
                if remaining > 0:
                    with control.phase("PPO", total=remaining):
                        model.learn(remaining, callback=CallbackList(callbacks),
                                    tb_log_name="ppo", reset_num_timesteps=False,
                                    progress_bar=False)
            except KeyboardInterrupt:  # Stopped (SIGINT/SIGTERM) or a second Ctrl-C
                interrupted = True
            except EnvWorkerLost as e:  # a Ray env worker or its node died: stop, keep the run
                interrupted = True
                if control.signum is None:
                    error = str(e)
                    control.log(error)
            if interrupted and model is not None:
                path = save_snapshot(model, vecnorm, run_dir / "interrupted")
                hint = (f"resume: fingergym train --resume {run_dir}" if model.num_timesteps
                        or resume is not None else "stopped before PPO started: the saved "
                        "model is untrained; start a new run rather than resume this one")
                control.log(f"interrupted at {model.num_timesteps} steps; saved {path} ({hint})")
            elif interrupted:
                control.log("interrupted before the model was built; nothing to save")
            else:
                save_snapshot(model, vecnorm, run_dir / "final")
                if not evaluator.rows or evaluator.rows[-1]["timesteps"] != model.num_timesteps:
                    evaluator.init_callback(model)
                    try:
                        evaluator.run_eval()
                    except KeyboardInterrupt:
                        interrupted = True
        finally:
            if venv is not None:
                venv.close()
    rows = evaluator.rows if evaluator is not None else []
    plot_learning_curve(rows, run_dir / "learning_curve.png",
                        title=f"PPO {cfg.eval_scenario().task} (seed {cfg.seed})")
    best = max(rows, key=lambda r: (r["success_rate"], r["mean_return"])) if rows else None
    summary = {"run_dir": str(run_dir),
               "timesteps": int(model.num_timesteps) if model is not None else 0,
               "wall_s": round(time.perf_counter() - t_start, 1), "interrupted": interrupted,
               "error": error, "signal": control.signum, "final_eval": rows[-1] if rows else None,
               "best_eval": best, "warm_start": warm, "git_commit": meta["git_commit"]}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _start_workers(cfg: TrainConfig, n_envs: int, subprocess_envs: bool, control):
    """:func:`make_vec_env`, with workers that ignore SIGINT and SIGTERM from their first
    instruction: SubprocVecEnv forks them from multiprocessing's fork server, which is started
    here with both signals ignored (its children inherit that). A worker that dies while
    starting because a stop was requested ends the run quietly (:class:`Stopped`)."""
    import multiprocessing
    import multiprocessing.forkserver

    from fingergym.policies.progress import Stopped

    if subprocess_envs and n_envs > 1 and "forkserver" in multiprocessing.get_all_start_methods():
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    try:
        return make_vec_env(cfg, n_envs, subprocess_envs=subprocess_envs)
    except (EOFError, ConnectionError) as e:  # a worker died while starting
        if control.signum is None:
            raise
        raise Stopped(control.signum) from e


# ---------------------------------------------------------------------------- CLI
def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as config changes (values parsed as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ScenarioError(f"--set {item!r}: expected KEY=VALUE (e.g. ppo.n_steps=512)")
        out[key.strip()] = yaml.safe_load(value)
    return out


EPILOG = """\
A run directory holds config.yaml, meta.json, tb/ (tensorboard), checkpoints/step_<n>.zip,
best.zip (highest success on the training-time evaluation seeds), final.zip, eval.csv/json,
learning_curve.png, summary.json. Export one: fingergym export RUN_DIR -o policy.safetensors.

Every phase shows progress. Ctrl-C or SIGTERM stops at the next env step, saves
interrupted.zip and exits (130 / 143); a second Ctrl-C aborts at once.
The config's keys and the seeds used for training, selection and reporting: docs/training.md.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", type=Path, default=None,
                        help="training config YAML (default: configs/train.yaml for a task "
                             "with a scripted expert; without one, configs/train_planner.yaml "
                             "if fingergym.planning plans the task, else "
                             "configs/train_expertfree.yaml)")
    parser.add_argument("--expert-free", action="store_true",
                        help="ignore the task's scripted expert: train with the default of a "
                             "task without one (planner demonstrations or reset curriculum)")
    parser.add_argument("--task", default=None, metavar="ID_OR_TASK",
                        help="a registered gym id or task (`fingergym tasks`): trains on its "
                             "default scenario (sets env.scenario)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="output directory (default: runs/<UTC time>)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR|ZIP",
                        help="resume a run directory (its newest snapshot) or a checkpoint .zip, "
                             "with its own config, step count and eval log")
    parser.add_argument("--total-timesteps", type=int, default=None, metavar="N",
                        help="env steps to train for, counted from the start of the run "
                             "(default: the config's total_timesteps; with --resume, raises it)")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed: PPO, the envs' randomization (default: the config's "
                             "seed); evaluation seeds are fixed by the config's eval section")
    parser.add_argument("--n-envs", type=int, default=None, metavar="N",
                        help="parallel env worker processes (default: the config's env.n_envs; "
                             "0: one per core)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set ppo.learning_rate=1e-4")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="env workers on Ray (env.backend: ray): on the cluster at ADDRESS "
                             "(auto, HOST:PORT, ray://HOST:10001), or a local Ray without one")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars: one line per phase instead (for logs)")


def _default_config_for(cfg: TrainConfig, scenario: str, *,
                        expert_free: bool = False) -> TrainConfig:
    """The shipped default config for the scenario's task.

    - ``configs/train.yaml`` (behaviour cloning of the task's scripted expert, then PPO) if
      the task has one and ``expert_free`` is false;
    - else ``configs/train_planner.yaml`` (the same warm start from closed-loop planner
      demonstrations) if :mod:`fingergym.planning` can plan the task;
    - else ``configs/train_expertfree.yaml`` (hold prior + the task's reset curriculum).
    """
    from fingergym.planning.demos import cannot_plan
    from fingergym.scenario import as_scenario

    loaded = as_scenario(scenario_ref_path(scenario))
    task, _ = loaded.plugins()
    if task.expert() is not None and not expert_free:
        return cfg
    why = ("--expert-free" if task.expert() is not None
           else f"task {task.name!r} has no scripted expert")
    no_plan = cannot_plan(loaded)
    name = EXPERT_FREE_CONFIG if no_plan else PLANNER_CONFIG
    recipe = (f"hold prior + the task's reset curriculum; {no_plan}" if no_plan
              else "behaviour cloning of planner demonstrations, then PPO")
    print(f"{why}: training with {name} ({recipe}; docs/training.md)")
    return load_train_config(Path(str(resources.files("fingergym.configs").joinpath(name))))


def run(args: argparse.Namespace) -> int:
    try:
        resume = latest_snapshot(args.resume) if args.resume else None
        if args.config is None and resume is not None:
            config_path = run_dir_of(resume) / "config.yaml"
        else:
            config_path = args.config
        cfg = load_train_config(config_path)
        changes = parse_set(args.set)
        for key, attr in (("total_timesteps", "total_timesteps"), ("seed", "seed"),
                          ("env.n_envs", "n_envs")):
            if getattr(args, attr) is not None:
                changes[key] = getattr(args, attr)
        if args.task:
            from fingergym.registry import scenario_path

            path = scenario_path(args.task, None)  # refuses an unknown name
            # the name, not this machine's path: config.yaml resumes wherever it is installed
            changes["env.scenario"] = args.task if path else ""
        if resume is not None:
            normalization_of(resume, cfg)  # refuse a snapshot cut short before starting workers
        if args.config is None and resume is None:
            cfg = _default_config_for(cfg, changes.get("env.scenario", cfg.env.scenario),
                                      expert_free=getattr(args, "expert_free", False))
        elif getattr(args, "expert_free", False):
            raise ScenarioError("--expert-free picks the default config; it cannot be combined "
                                "with --config or --resume")
        if getattr(args, "ray", None) is not None:
            changes["env.backend"] = "ray"
            changes["env.ray_address"] = args.ray
        if changes:
            try:
                cfg = cfg.replace(**changes)
            except KeyError as e:
                raise ScenarioError(f"--set: unknown config key {e}") from e
    except (ScenarioError, FileNotFoundError) as e:
        print(f"fingergym train: {e}", file=sys.stderr)
        return 2
    if resume is not None:
        run_dir = args.run_dir or run_dir_of(resume)
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        run_dir = args.run_dir or RUNS_DIR / stamp
    print(f"run directory: {run_dir}")
    summary = train(cfg, run_dir, resume=resume, progress_bar=not args.no_progress,
                    argv=sys.argv[1:])
    print(json.dumps({k: summary[k] for k in ("timesteps", "wall_s", "final_eval",
                                              "best_eval")}, indent=1))
    if summary.get("error"):
        print(f"fingergym train: {summary['error']}", file=sys.stderr)
        return 1
    if summary["interrupted"]:
        return 128 + (summary["signal"] or signal.SIGINT)  # 130 Ctrl-C, 143 SIGTERM
    print(f"export: fingergym export {run_dir} -o policy.safetensors")
    return 0

"""``fingergym sweep CONFIG``: many training runs (configurations x seeds) on Ray Tune.

Every run is an ordinary ``fingergym train`` run with its own run directory
(``<out_dir>/<configuration>/seed_<seed>/``). When all runs have ended, one summary goes to
``<out_dir>``: ``summary.csv`` (one row per run), ``summary.json`` (per configuration: median
and min/max over seeds) and ``summary.png`` (held-out success against wall-clock time, median
line and min-max band over seeds, one colour per configuration). The shipped example is
``configs/sweep.yaml``.

On a multi-node cluster each run directory is written on the node that ran it (put ``out_dir``
on a shared filesystem to have them in one place); the summary is built from what the runs
report to Tune, so it is complete either way.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fingergym.policies.config import TrainConfig, config_from_dict, load_train_config
from fingergym.scenario import ScenarioError, read_yaml

SWEEP_KEYS = {"train": str, "ray_address": str, "out_dir": str, "seeds": list,
              "cpus_per_run": (int, float), "max_concurrent": int, "set": dict,
              "configurations": dict}


# ---------------------------------------------------------------------------- config
def load_sweep(path: Path) -> tuple[dict, dict[str, TrainConfig]]:
    """Read and validate a sweep YAML: (its settings, configuration name -> TrainConfig).

    Errors name the file and the key (``configurations.<name>.<key>`` for overrides)."""
    path = Path(path)
    data = read_yaml(path, "sweep config")
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: top level: expected a mapping")
    for key, value in data.items():
        if key not in SWEEP_KEYS:
            raise ScenarioError(f"{path}: {key}: unknown key (known: {', '.join(SWEEP_KEYS)})")
        if not isinstance(value, SWEEP_KEYS[key]) or isinstance(value, bool):
            raise ScenarioError(f"{path}: {key}: wrong type {type(value).__name__}")
    s = {"train": "", "ray_address": "", "out_dir": "", "seeds": [0], "cpus_per_run": 1,
         "max_concurrent": 0, "set": {}, "configurations": {}, **data}
    if not s["seeds"] or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                                 for x in s["seeds"]):
        raise ScenarioError(f"{path}: seeds: expected a non-empty list of integers >= 0")
    if len(set(s["seeds"])) != len(s["seeds"]):
        raise ScenarioError(f"{path}: seeds: repeated seed")
    if s["cpus_per_run"] <= 0:
        raise ScenarioError(f"{path}: cpus_per_run: must be > 0")
    if s["max_concurrent"] < 0:
        raise ScenarioError(f"{path}: max_concurrent: must be >= 0")
    if not s["configurations"]:
        raise ScenarioError(f"{path}: configurations: at least one (name: {{key: value}})")
    base_path = (path.parent / s["train"]) if s["train"] else None
    try:
        base = load_train_config(base_path)
    except FileNotFoundError as e:
        raise ScenarioError(f"{path}: train: {e}") from e
    if base.env.scenario.endswith((".yaml", ".yml")) and \
            not Path(base.env.scenario).is_absolute():
        base = base.replace(**{"env.scenario": str((base_path.parent if base_path else Path())
                                                   / base.env.scenario)})
    configs = {}
    for name, overrides in s["configurations"].items():
        where = f"configurations.{name}"
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ScenarioError(f"{path}: {where}: a configuration name is a plain string")
        if not isinstance(overrides, dict | type(None)):
            raise ScenarioError(f"{path}: {where}: expected a mapping of KEY: VALUE")
        for label, changes in (("set", s["set"]), (where, overrides or {})):
            try:
                base_or = configs.get(name, base)
                configs[name] = base_or.replace(**changes)
            except KeyError as e:
                raise ScenarioError(f"{path}: {label}: unknown config key {e}") from e
            except ScenarioError as e:
                raise ScenarioError(f"{path}: {label}: {e}") from e
        if configs[name].env.n_envs == 0:  # one env per reserved CPU
            configs[name] = configs[name].replace(
                **{"env.n_envs": max(1, int(s["cpus_per_run"]))})
    return s, configs


# ---------------------------------------------------------------------------- one run
def _run_one(params: dict, configs: dict[str, dict], out_dir: str) -> None:
    """Tune function trainable: train one (configuration, seed) into its run directory and
    report its evaluation log."""
    from ray import tune

    from fingergym.policies.train import train

    name, seed = params["configuration"], int(params["seed"])
    cfg = config_from_dict(configs[name], source=f"sweep {name}").replace(seed=seed)
    run_dir = Path(out_dir) / name / f"seed_{seed}"
    summary = train(cfg, run_dir, progress_bar=False, argv=["sweep", name, f"seed={seed}"],
                    log=lambda *a: print(*a, flush=True))
    rows = json.loads((run_dir / "eval.json").read_text()) if (run_dir / "eval.json").exists() \
        else []
    final = summary.get("final_eval") or {}
    tune.report({"configuration": name, "seed": seed, "run_dir": str(run_dir),
                 "timesteps": summary["timesteps"], "wall_s": summary["wall_s"],
                 "success_rate": final.get("success_rate", float("nan")),
                 "eval_episodes": final.get("episodes", 0), "error": summary.get("error") or "",
                 "eval_json": json.dumps(rows)})


def run_sweep(settings: dict, configs: dict[str, TrainConfig], out_dir: Path, *,
              log=print) -> dict:
    """Run every (configuration, seed) on Ray Tune, then write and return the summary."""
    from ray import tune

    from fingergym.policies.ray_vec_env import init_ray

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = init_ray(settings["ray_address"] or None)
    try:
        import ray

        trainable = tune.with_resources(
            tune.with_parameters(_run_one, configs={k: c.to_dict() for k, c in configs.items()},
                                 out_dir=str(out_dir)),
            {"cpu": settings["cpus_per_run"]})
        log(f"sweep: {len(configs)} configuration(s) x {len(settings['seeds'])} seed(s) on "
            f"{int(ray.cluster_resources().get('CPU', 0))} Ray CPU(s); runs in {out_dir}")
        tuner = tune.Tuner(
            trainable,
            param_space={"configuration": tune.grid_search(list(configs)),
                         "seed": tune.grid_search(list(settings["seeds"]))},
            tune_config=tune.TuneConfig(max_concurrent_trials=settings["max_concurrent"] or None,
                                        reuse_actors=True),
            run_config=tune.RunConfig(name="tune", storage_path=str(out_dir), verbose=1))
        results = tuner.fit()
        runs = [r.metrics for r in results if r.metrics and "configuration" in r.metrics]
        errors = [str(r.error).splitlines()[0] for r in results if r.error]
    finally:
        if started:
            import ray

            ray.shutdown()
    return write_summary(runs, list(configs), out_dir, errors=errors)


# ---------------------------------------------------------------------------- summary
def _step_curve(rows: list[dict], grid: np.ndarray) -> np.ndarray:
    """Success rate of the latest evaluation at or before each grid time (NaN before the
    first evaluation and after the last one)."""
    t = np.array([r["wall_s"] for r in rows], dtype=float)
    y = np.array([r["success_rate"] for r in rows], dtype=float)
    idx = np.searchsorted(t, grid, side="right") - 1
    out = np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan)
    out[grid > t[-1]] = np.nan
    return out


def write_summary(runs: list[dict], names: list[str], out_dir: Path, *,
                  errors: list[str] | None = None) -> dict:
    """summary.csv / summary.json / summary.png from the runs' reports; returns summary.json."""
    fields = ("configuration", "seed", "timesteps", "wall_s", "success_rate", "eval_episodes",
              "error", "run_dir")
    runs = sorted(runs, key=lambda r: (names.index(r["configuration"]), r["seed"]))
    with (out_dir / "summary.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(runs)
    per_config = {}
    for name in names:
        rs = [r for r in runs if r["configuration"] == name]
        ok = [r for r in rs if not r["error"]]
        succ = np.array([r["success_rate"] for r in ok], dtype=float)
        wall = np.array([r["wall_s"] for r in ok], dtype=float)
        per_config[name] = {
            "runs": len(rs), "failed": len(rs) - len(ok), "seeds": [r["seed"] for r in ok],
            "success_median": float(np.median(succ)) if len(ok) else None,
            "success_min": float(succ.min()) if len(ok) else None,
            "success_max": float(succ.max()) if len(ok) else None,
            "wall_s_median": float(np.median(wall)) if len(ok) else None,
            "eval_episodes": ok[0]["eval_episodes"] if ok else 0}
    summary = {"configurations": per_config, "errors": errors or [],
               "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    _plot(runs, names, out_dir / "summary.png")
    return summary


def _plot(runs: list[dict], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, name in enumerate(names):
        curves = [json.loads(r["eval_json"]) for r in runs
                  if r["configuration"] == name and json.loads(r["eval_json"])]
        if not curves:
            continue
        t_end = max(c[-1]["wall_s"] for c in curves)
        grid = np.linspace(0.0, t_end, 200)
        ys = np.array([_step_curve(c, grid) for c in curves])
        with warnings.catch_warnings():  # all-NaN columns (no seed evaluated yet): NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            med, lo, hi = (np.nanmedian(ys, axis=0), np.nanmin(ys, axis=0),
                           np.nanmax(ys, axis=0))
        c = f"C{k}"
        ax.plot(grid / 60, med, c=c, label=f"{name} (median of {len(curves)} seeds)")
        ax.fill_between(grid / 60, lo, hi, color=c, alpha=0.2, lw=0)
    ax.set_xlabel("wall-clock [min]")
    ax.set_ylabel("held-out success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("sweep: success vs wall-clock (band: min-max over seeds)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_table(summary: dict) -> str:
    """The per-configuration table printed at the end of a sweep."""
    head = f"{'configuration':<24} {'seeds':>5} {'success median [min, max]':>26} " \
           f"{'wall median':>11} {'episodes':>8}"
    lines = [head, "-" * len(head)]
    for name, c in summary["configurations"].items():
        if c["success_median"] is None:
            lines.append(f"{name:<24} {0:>5} {'all runs failed':>26}")
            continue
        succ = f"{c['success_median']:.0%} [{c['success_min']:.0%}, {c['success_max']:.0%}]"
        lines.append(f"{name:<24} {len(c['seeds']):>5} {succ:>26} "
                     f"{c['wall_s_median'] / 60:>9.1f} m {c['eval_episodes']:>8}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="sweep YAML (example: configs/sweep.yaml)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="sweep directory (default: the config's out_dir, else "
                             "runs/sweep-<UTC time>)")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="Ray cluster to run on (overrides the config's ray_address)")


def run(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        print("fingergym sweep: needs Ray: pip install 'fingergym[ray]'", file=sys.stderr)
        return 2
    try:
        settings, configs = load_sweep(args.config)
    except FileNotFoundError as e:
        print(f"fingergym sweep: {e}", file=sys.stderr)
        return 2
    if args.ray is not None:
        settings["ray_address"] = args.ray
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out_dir = args.out_dir or Path(settings["out_dir"] or f"runs/sweep-{stamp}")
    summary = run_sweep(settings, configs, out_dir)
    print(format_table(summary))
    for e in summary["errors"]:
        print(f"fingergym sweep: a run failed: {e}", file=sys.stderr)
    print(f"summary: {Path(out_dir) / 'summary.csv'}, {Path(out_dir) / 'summary.png'}")
    return 1 if summary["errors"] else 0


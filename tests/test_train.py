"""`fingergym train`: config validation, a tiny run (run dir, checkpoint, eval CSV, export),
resume, the expert used for the warm start."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fingergym.policies.config import config_from_dict, load_train_config
from fingergym.scenario import ScenarioError

TINY = ["--total-timesteps", "512", "--n-envs", "2", "--no-progress",
        "--set", "ppo.n_steps=128", "--set", "ppo.batch_size=64", "--set", "ppo.n_epochs=2",
        "--set", "warm_start.episodes=2",
        "--set", "warm_start.epochs=2", "--set", "eval.freq=256", "--set", "eval.episodes=1",
        "--set", "checkpoint_freq=256"]


def test_default_config_loads():
    from fingergym.policies.config import TrainConfig

    cfg = load_train_config()
    # the code's defaults are the shipped file (one source of truth)
    assert cfg.to_dict() == TrainConfig().to_dict()
    assert cfg.policy.pi == [64, 64] and cfg.policy.vf == [64, 64]
    assert cfg.total_timesteps > 0 and len(cfg.digest()) == 64
    # the evaluation scenario is always the full default randomization
    from fingergym import load_scenario

    assert cfg.eval_scenario() == load_scenario()


@pytest.mark.parametrize("data, key", [
    ({"ppo": {"learning_rat": 1e-3}}, "ppo.learning_rat"),
    ({"ppo": {"n_steps": "many"}}, "ppo.n_steps"),
    ({"ppo": {"gamma": 1.5}}, "ppo.gamma"),
    ({"policy": {"activation": "gelu"}}, "policy.activation"),
    ({"normalize": {"obs": "yes"}}, "normalize.obs"),
    ({"env": {"overrides": {"box.x_range": [0.5, 0.1]}}}, "box.x_range"),
    ({"env": {"overrides": {"no.such": 1}}}, "env.overrides"),
    ({"bogus": 1}, "bogus"),
    ({"ppo": {"batch_size": 4096}, "env": {"n_envs": 2}}, "ppo.batch_size"),
    ({"env": {"backend": "dask"}}, "env.backend"),
    ({"env": {"ray_address": "auto"}}, "env.ray_address"),
    ({"env": {"backend": "ray", "envs_per_worker": 0}}, "env.envs_per_worker"),
])
def test_config_errors_name_file_and_key(tmp_path, data, key):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as e:
        load_train_config(path)
    assert str(path) in str(e.value) and key in str(e.value)


def test_training_overrides_do_not_touch_eval_scenario():
    cfg = config_from_dict({"env": {"overrides": {"box.x_range": [-0.02, 0.02]}}})
    assert cfg.train_scenario().box.x_range == [-0.02, 0.02]
    assert cfg.eval_scenario().box.x_range == [-0.1, 0.1]


def test_cli_bad_config_is_a_clean_error(tmp_path, capsys):
    from fingergym.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("ppo:\n  n_epochs: 0\n")
    assert main(["train", "--config", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    assert "ppo.n_epochs" in capsys.readouterr().err
    assert main(["train", "--set", "ppo.nope=1", "--run-dir", str(tmp_path / "r")]) == 2


def test_standing_expert_beats_scripted_baseline():
    """The warm-start expert (fixed press once standing) flips more boxes than ScriptedFlip."""
    import fingergym
    from fingergym.policies.evaluate import evaluate
    from fingergym.tasks.box_flipup.experts import ScriptedFlip, StandingExpert

    env = fingergym.make_env()
    seeds = [1014, 1036, 1037, 1000]  # the first three: ScriptedFlip ends rocking (failure)
    rates = {}
    for name, ctrl in (("scripted", ScriptedFlip(env.scenario)),
                       ("expert", StandingExpert(env.scenario))):
        rates[name] = evaluate(env, lambda obs, c=ctrl: c(env.true_state()), seeds)
    assert rates["expert"]["success_rate"] >= rates["scripted"]["success_rate"] + 0.5


@pytest.mark.slow
def test_tiny_run_resume_and_export(tmp_path, capsys):
    from fingergym.cli import main
    from fingergym.policies.runner import Policy

    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), *TINY]) == 0
    for name in ("config.yaml", "meta.json", "final.zip", "final_normalize.json",
                 "best.zip", "eval.csv", "eval.json", "learning_curve.png", "summary.json",
                 "warm_start.json"):
        assert (run_dir / name).exists(), name
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.zip")) == \
        ["step_256.zip", "step_512.zip"]
    assert list((run_dir / "tb").rglob("events.out.tfevents*"))
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["fingergym_version"] and meta["git_commit"] and len(meta["config_sha256"]) == 64
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["total_timesteps"] == 512 and saved["ppo"]["n_steps"] == 128
    with (run_dir / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    # step 0 (the clone), then every 256 steps
    assert [int(r["timesteps"]) for r in rows] == [0, 256, 512]
    # each rate is a count of the evaluation's episodes, and the JSON log says the same
    for r in rows:
        wins = float(r["success_rate"]) * int(r["episodes"])
        assert wins == pytest.approx(round(wins)) and int(r["episodes"]) == 1
    assert [float(r["success_rate"]) for r in rows] == [
        r["success_rate"] for r in json.loads((run_dir / "eval.json").read_text())]

    # resume to more steps: continues the step count and the eval log
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--total-timesteps", "768",
                 "--no-progress"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["timesteps"] == 768
    rows = json.loads((run_dir / "eval.json").read_text())
    assert [r["timesteps"] for r in rows] == [0, 256, 512, 768]
    assert (run_dir / "checkpoints" / "step_768.zip").exists()
    assert len(json.loads((run_dir / "meta.json").read_text())["history"]) == 2

    # the time-to-80% report re-evaluates the checkpoints and the run's last snapshot
    rep = _time_to_80().report_run(run_dir, episodes=1, validation=1)
    assert rep["steps"] == 768 and rep["held_out_final"]["snapshot"] == "final"
    assert rep["held_out_final"]["episodes"] == 1 and rep["held_out_best"]["episodes"] == 1
    checked = [v["timesteps"] for v in rep["validation"]]
    assert checked and checked == [256, 512, 768][:len(checked)]  # in order, up to the first 80%
    assert (rep["first_80_validated"] is None) == (rep["validation"][-1]["success_rate"] < 0.8)

    # the finer learning curve: the checkpoints at multiples of 512, then the run's end
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("success_curve", Path(__file__).resolve().parents[1] / "bench"
                                   / "success_curve.py")
    curve = module_from_spec(spec)
    spec.loader.exec_module(curve)
    assert curve.snapshots(run_dir, 512) == [(512, "step_512"), (768, "final")]
    assert curve.snapshots(run_dir, 256, start=500) == [(512, "step_512"), (768, "step_768")]
    png = tmp_path / "curve.png"
    assert curve.main([str(run_dir), "--every", "512", "--episodes", "1", "--workers", "1",
                       "--plot", str(png)]) == 0
    assert "(768 steps)" in capsys.readouterr().out and png.stat().st_size > 0
    with pytest.raises(SystemExit):
        curve.main([str(tmp_path / "nothing")])  # not a run directory: a one-line error
    assert "not a run directory" in capsys.readouterr().err

    out = tmp_path / "p.safetensors"
    assert main(["export", str(run_dir), "-o", str(out), "--snapshot", "final"]) == 0
    policy = Policy.load(out)
    a = policy(np.zeros(10, dtype=np.float32))
    assert a.shape == (2,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)


def test_keyboard_interrupt_saves_snapshot(tmp_path, monkeypatch):
    """Ctrl-C during learn() leaves an `interrupted` snapshot that resume picks up."""
    from stable_baselines3 import PPO

    from fingergym.policies.train import latest_snapshot, train

    def interrupted_learn(self, *args, **kwargs):
        self.num_timesteps = 64
        raise KeyboardInterrupt

    monkeypatch.setattr(PPO, "learn", interrupted_learn)
    cfg = load_train_config().replace(**{
        "total_timesteps": 128, "env.n_envs": 1, "ppo.n_steps": 64, "ppo.batch_size": 32,
        "warm_start.episodes": 0, "eval.freq": 0, "eval.episodes": 1, "checkpoint_freq": 0})
    summary = train(cfg, tmp_path, progress_bar=False, subprocess_envs=False,
                    log=lambda *a: None)
    assert summary["interrupted"] and summary["timesteps"] == 64
    assert (tmp_path / "interrupted.zip").exists()
    assert (tmp_path / "interrupted_normalize.json").exists()
    assert latest_snapshot(tmp_path) == tmp_path / "interrupted.zip"
    assert not (tmp_path / "final.zip").exists()
    assert summary["run_dir"] == str(tmp_path)


@pytest.mark.slow
def test_ctrl_c_on_a_real_run(tmp_path):
    """SIGINT to the whole process group (what a terminal's Ctrl-C does) mid-training: the
    workers ignore it, the trainer saves `interrupted` and exits 130, no process is left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fingergym.cli", "train", "--run-dir", str(run_dir),
         "--total-timesteps", "1000000", "--n-envs", "2", "--no-progress",
         "--set", "warm_start.episodes=0", "--set", "eval.freq=0", "--set", "ppo.n_steps=128"],
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(run_dir.glob("tb/ppo_*")) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # inside learn()
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out
    assert "interrupted at" in out
    assert (run_dir / "interrupted.zip").exists()
    assert (run_dir / "interrupted_vecnormalize.pkl").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] and summary["timesteps"] > 0
    deadline = time.monotonic() + 15  # the workers (and multiprocessing helpers) exit too
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("processes of the interrupted run are still alive")


@pytest.mark.slow
def test_sigterm_during_the_warm_start_saves_and_exits_cleanly(tmp_path):
    """SIGTERM to the whole process group (what `timeout`, Slurm and `docker stop` send) during
    the warm start: the trainer saves what exists, exits 143 with no traceback from itself or
    its workers, and no process is left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fingergym.cli", "train", "--run-dir", str(run_dir),
         "--n-envs", "2", "--no-progress", "--set", "warm_start.episodes=400"],
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:  # each phase is announced as it starts
            lines.append(line)
            if line.startswith("warm start"):
                break
        time.sleep(2)  # inside the expert episodes
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        out = "".join(lines) + out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, out
    assert "Traceback" not in out and "Error" not in out, out
    assert "saved" in out and (run_dir / "interrupted.zip").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] and summary["signal"] == signal.SIGTERM
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("processes of the stopped run are still alive")


def test_learning_curve_axes_read_without_offsets(tmp_path, monkeypatch):
    """Returns that differ in the fourth decimal are labelled as they are (no "+9.2e2" offset);
    env steps read as 500k, 1M, ... (no "1e6" multiplier)."""
    import matplotlib.figure

    from fingergym.policies.callbacks import plot_learning_curve

    figures = []
    savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda self, *a, **k: (figures.append(self), savefig(self, *a, **k))[1])
    rows = [{"timesteps": 150_000 * i, "success_rate": 0.05 * i, "mean_return": 920 + 1e-4 * i}
            for i in range(21)]  # 3 M steps (the reference's budget), returns within 0.002
    assert plot_learning_curve(rows, tmp_path / "curve.png").exists()
    (fig,) = figures
    fig.canvas.draw()
    for ax in fig.axes:
        assert ax.yaxis.get_major_formatter().get_offset() == ""
        assert ax.xaxis.get_major_formatter().get_offset() == ""
    assert {"500k", "1M", "3M"} <= {t.get_text() for t in fig.axes[1].get_xticklabels()}
    assert any(t.get_text().startswith("920.") for t in fig.axes[1].get_yticklabels())


@pytest.mark.parametrize("data, key", [
    ({"configurations": {"a": {}}, "seeds": "0"}, "seeds"),
    ({"configurations": {"a": {}}, "seeds": [1, 1]}, "seeds"),
    ({"configurations": {}}, "configurations"),
    ({"configurations": {"a": {"ppo.nope": 1}}}, "configurations.a"),
    ({"configurations": {"a": {"ppo.gamma": 2.0}}}, "ppo.gamma"),
    ({"configurations": {"a": {}}, "set": {"bogus": 1}}, "set"),
    ({"configurations": {"a": {}}, "cpus": 2}, "cpus"),
])
def test_sweep_config_errors_name_file_and_key(tmp_path, data, key):
    from fingergym.policies.sweep import load_sweep

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as e:
        load_sweep(path)
    assert str(path) in str(e.value) and key in str(e.value)


def test_shipped_sweep_config_loads():
    from pathlib import Path

    from fingergym.policies.sweep import load_sweep

    settings, configs = load_sweep(Path(__file__).parents[1] / "configs" / "sweep.yaml")
    assert len(settings["seeds"]) >= 2 and len(configs) >= 2
    assert len({c.digest() for c in configs.values()}) == len(configs)


def test_robot_side_and_trainer_import_no_ray():
    """Ray is the training-only extra: deploy, the policy runner and the trainer (which catches
    EnvWorkerLost) load without importing it."""
    import subprocess
    import sys

    code = ("import sys, fingergym.hardware.deploy, fingergym.policies.runner, "
            "fingergym.policies.train, fingergym.policies.ray_vec_env, fingergym.cli; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr


def _time_to_80():
    """bench/time_to_80.py as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "time_to_80.py"
    spec = importlib.util.spec_from_file_location("time_to_80", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_time_to_80_benchmark_passes_the_default_recipe_choice_to_train(tmp_path):
    """bench/time_to_80.py times what `fingergym train --task/--expert-free` picks itself."""
    bench = _time_to_80()
    with pytest.raises(SystemExit) as e:
        bench.main(["--help"])
    assert e.value.code == 0
    # without --label it neither trains nor reports; --plot-only only draws recorded labels
    for argv in ([], ["--plot-only"], ["--plot-only", "--plot", str(tmp_path / "x.png"),
                                       "--plot-labels", "no such label"]):
        with pytest.raises(SystemExit) as e:
            bench.main(argv)
        assert e.value.code == 2
    assert not (tmp_path / "x.png").exists()
    args = argparse.Namespace(task="fingergym/GripperLift-v0", expert_free=False)
    assert bench.train_args(args) == ("--task", "fingergym/GripperLift-v0")
    args = argparse.Namespace(task=None, expert_free=True)
    assert bench.train_args(args) == ("--expert-free",)
    rows = [{"success_rate": r, "timesteps": i} for i, r in enumerate([0.0, 0.75, 0.8, 0.9])]
    assert bench.first_at(rows)["timesteps"] == 2


def test_a_snapshot_cut_short_while_saving_is_never_resumed_without_its_normalization(
        tmp_path, capsys):
    """The normalization is written before the .zip (each through a rename), and resume
    refuses a .zip whose normalization is missing instead of training on raw observations."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from fingergym.cli import main
    from fingergym.env import make_env
    from fingergym.policies.callbacks import save_snapshot
    from fingergym.policies.train import build_model

    cfg = load_train_config()
    vecnorm = VecNormalize(DummyVecEnv([make_env]))
    model = build_model(cfg, vecnorm, tmp_path)

    def killed(path):
        raise KeyboardInterrupt  # a second Ctrl-C in the middle of the save

    vecnorm.save = killed
    with pytest.raises(KeyboardInterrupt):
        save_snapshot(model, vecnorm, tmp_path / "run" / "interrupted")
    assert not list((tmp_path / "run").glob("*.zip"))  # no snapshot without its statistics
    del vecnorm.save
    save_snapshot(model, vecnorm, tmp_path / "run" / "interrupted")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "interrupted.zip", "interrupted_normalize.json", "interrupted_vecnormalize.pkl"]
    vecnorm.close()

    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    (tmp_path / "run" / "interrupted_vecnormalize.pkl").unlink()  # an older run's cut-short save
    assert main(["train", "--resume", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "interrupted_vecnormalize.pkl is missing" in err and len(err.strip().splitlines()) == 1

"""Ray backend on a real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``):
env workers on both nodes, the first rollout equal to SubprocVecEnv's, a killed worker stops
the run with a snapshot, a sweep writes its summary. Skipped without the ``ray`` extra.

One cluster (1 CPU per node, 100 MB object stores, no dashboard) serves the whole module.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

from fingergym.policies.config import load_train_config  # noqa: E402

MB = 2**20
TINY = {"env.n_envs": 2, "ppo.n_steps": 32, "ppo.batch_size": 32, "ppo.n_epochs": 1,
        "warm_start.episodes": 0, "eval.freq": 0, "eval.episodes": 1, "checkpoint_freq": 0}


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 100 * MB, "include_dashboard": False})
    try:
        c.add_node(num_cpus=1, object_store_memory=100 * MB)
        ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)
        c.wait_for_nodes()
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


class FirstRollout(BaseCallback):
    """Copies the rollout buffer at the end of the first rollout."""

    def __init__(self):
        super().__init__()
        self.data = None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.data is None:
            b = self.model.rollout_buffer
            self.data = {k: getattr(b, k).copy() for k in
                         ("observations", "actions", "rewards", "episode_starts", "values")}


def _first_rollout(cfg, tmp: Path) -> tuple[dict, list[dict]]:
    from fingergym.policies.train import build_model, make_vec_env

    venv = make_vec_env(cfg, cfg.env.n_envs)
    try:
        locations = getattr(venv.unwrapped, "locations", [])
        vecnorm = VecNormalize(venv, gamma=cfg.ppo.gamma)
        model = build_model(cfg, vecnorm, tmp)
        cb = FirstRollout()
        model.learn(cfg.ppo.n_steps * cfg.env.n_envs, callback=cb)
    finally:
        venv.close()
    return cb.data, locations


def test_workers_on_both_nodes_and_first_rollout_equals_subproc(cluster, tmp_path):
    """Same seeds -> the same first PPO rollout (observations, actions, rewards, episode
    starts) with env workers on the two nodes as with SubprocVecEnv on this process."""
    cfg = load_train_config().replace(seed=7, **TINY)
    ref, _ = _first_rollout(cfg, tmp_path / "subproc")
    got, where = _first_rollout(cfg.replace(**{"env.backend": "ray"}), tmp_path / "ray")
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(nodes) == 2 and {w["node_id"] for w in where} == nodes
    for key in ref:
        assert np.array_equal(ref[key], got[key]), key
    assert ref["episode_starts"][0].all() and np.abs(ref["rewards"]).sum() > 0


def _env_worker_pids() -> set[int]:
    pids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes().startswith(b"ray::EnvWorker"):
                    pids.add(int(d.name))
            except OSError:
                pass
    return pids


def test_killed_worker_stops_the_run_with_a_snapshot(cluster, tmp_path, capsys):
    """SIGKILL one env worker mid-training: `fingergym train --ray` stops with exit code 1,
    names the lost worker and its node, and leaves an `interrupted` snapshot to resume."""
    from fingergym.cli import main
    from fingergym.policies.train import latest_snapshot

    before = _env_worker_pids()
    run_dir = tmp_path / "run"
    killed = []

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            new = _env_worker_pids() - before
            if len(new) == 2 and list(run_dir.glob("tb/ppo_*")):
                time.sleep(0.5)  # inside learn()
                pid = min(new)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    args = ["train", "--ray", cluster.address, "--run-dir", str(run_dir), "--no-progress",
            "--total-timesteps", "100000"]
    for key, value in TINY.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 1
    thread.join(5)
    assert killed
    err = capsys.readouterr().err
    assert "env worker" in err and f"pid {killed[0]}" in err and "node" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] and summary["error"] and 0 < summary["timesteps"] < 100000
    assert latest_snapshot(run_dir) == run_dir / "interrupted.zip"
    assert (run_dir / "interrupted_vecnormalize.pkl").exists()
    assert not (run_dir / "final.zip").exists()


def test_sweep_writes_runs_and_summary(cluster, tmp_path):
    """2 configurations x 2 seeds on Tune: four run directories and one summary."""
    from fingergym.cli import main

    sweep = {"ray_address": cluster.address, "seeds": [0, 1], "cpus_per_run": 1,
             "set": {**TINY, "env.n_envs": 1, "total_timesteps": 64},
             "configurations": {"base": {}, "lr_1e-3": {"ppo.learning_rate": 1.0e-3}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out-dir", str(out)]) == 0
    for name in ("base", "lr_1e-3"):
        for seed in (0, 1):
            run = out / name / f"seed_{seed}"
            assert (run / "final.zip").exists() and (run / "eval.json").exists(), run
            assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == seed
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["configuration"], r["seed"]) for r in rows) == \
        [("base", "0"), ("base", "1"), ("lr_1e-3", "0"), ("lr_1e-3", "1")]
    summary = json.loads((out / "summary.json").read_text())
    for c in summary["configurations"].values():
        assert c["runs"] == 2 and c["failed"] == 0
        assert c["success_min"] <= c["success_median"] <= c["success_max"]
    assert (out / "summary.png").stat().st_size > 0


def test_lost_node_raises_env_worker_lost_naming_it(cluster):
    """The node under an env worker disappears (its raylet and workers killed): the next step
    raises EnvWorkerLost naming that worker's node; closing still works. Runs last: it removes
    the second node."""
    from fingergym.policies.ray_vec_env import EnvWorkerLost
    from fingergym.policies.train import make_vec_env

    cfg = load_train_config().replace(**{**TINY, "env.backend": "ray"})
    venv = make_vec_env(cfg, 2)
    try:
        venv.reset()
        actions = np.zeros((2, 2), dtype=np.float32)
        venv.step(actions)
        node = next(n for n in cluster.worker_nodes)
        where = next(w for w in venv.unwrapped.locations if w["node_id"] == node.node_id)
        cluster.remove_node(node, allow_graceful=False)
        with pytest.raises(EnvWorkerLost) as e:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                venv.step(actions)
        assert where["node_id"][:12] in str(e.value) and f"pid {where['pid']}" in str(e.value)
    finally:
        venv.close()


def test_cluster_launcher_example_is_valid():
    """docs/ray-cluster.yaml follows the cluster launcher's schema shipped with Ray."""
    import jsonschema  # a Ray dependency
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(yaml.safe_load(
        (Path(__file__).parents[1] / "docs" / "ray-cluster.yaml").read_text()), schema)

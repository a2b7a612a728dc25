"""Export and the policy runner: equal to SB3's deterministic prediction; bad files refused."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from fingergym.policies.runner import METADATA_KEY, Policy, PolicyFormatError


def _train_tiny(run_dir: Path, **changes):
    """A tiny PPO run (DummyVecEnv, a few hundred steps) with VecNormalize, exported."""
    from fingergym.policies.config import load_train_config
    from fingergym.policies.export import export
    from fingergym.policies.train import train

    cfg = load_train_config().replace(**{
        "total_timesteps": 256, "env.n_envs": 1, "ppo.n_steps": 128, "ppo.batch_size": 64,
        "ppo.n_epochs": 2, "warm_start.episodes": 1,
        "warm_start.epochs": 2, "eval.freq": 0, "eval.episodes": 1, "checkpoint_freq": 0,
        **changes})
    train(cfg, run_dir, progress_bar=False, subprocess_envs=False, log=lambda *a: None)
    out = run_dir / "policy.safetensors"
    policy = export(run_dir, out, "final")
    return run_dir, out, policy


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _train_tiny(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def trained_bounded(tmp_path_factory):
    """The same with the bounded mean (policy.bounded_mean: tanh on the Gaussian's mean)."""
    return _train_tiny(tmp_path_factory.mktemp("run_bounded"), **{"policy.bounded_mean": True})


OBS_DIM = 10


def _observations(n: int = 200) -> np.ndarray:
    """Realistic observations from a randomized episode plus wide random ones."""
    import fingergym

    env = fingergym.make_env()
    obs, _ = env.reset(seed=7)
    rows = [obs]
    rng = np.random.default_rng(0)
    for _ in range(40):
        obs, *_ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        rows.append(obs)
    rows += list(rng.normal(0, 1, (n - len(rows), OBS_DIM)).astype(np.float32))
    return np.asarray(rows, dtype=np.float32)


@pytest.mark.parametrize("which", ["trained", "trained_bounded"])
def test_export_matches_sb3_predict(which, request):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    import fingergym

    run_dir, _, policy = request.getfixturevalue(which)
    venv = DummyVecEnv([fingergym.make_env])
    vecnorm = VecNormalize.load(str(run_dir / "final_vecnormalize.pkl"), venv)
    vecnorm.training = False
    model = PPO.load(run_dir / "final.zip", device="cpu")
    obs = _observations()
    # the statistics must be non-trivial for this to test the normalization
    assert not np.allclose(vecnorm.obs_rms.mean, 0)
    expected = np.stack([model.predict(vecnorm.normalize_obs(o), deterministic=True)[0]
                         for o in obs])
    got = np.stack([policy(o) for o in obs])
    assert got.dtype == np.float32 and got.shape == (len(obs), 2)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(policy(obs), expected, atol=1e-5)  # batched
    assert not np.allclose(got, got[0])  # the policy is not constant
    last = policy.spec["layers"][-1]["activation"]
    assert last == ("tanh" if which == "trained_bounded" else None)


@pytest.mark.parametrize("which", ["trained", "trained_bounded"])
def test_live_policy_is_the_exported_function_in_memory(which, request):
    """``live_policy`` (the model in training, as DAgger rolls it out in worker processes)
    computes what its exported file computes, and survives the trip to a worker."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    import fingergym
    from fingergym.policies.export import live_policy

    run_dir, _, policy = request.getfixturevalue(which)
    vecnorm = VecNormalize.load(str(run_dir / "final_vecnormalize.pkl"),
                                DummyVecEnv([fingergym.make_env]))
    model = PPO.load(run_dir / "final.zip", device="cpu")
    live = pickle.loads(pickle.dumps(live_policy(model, vecnorm, fingergym.load_scenario())))
    obs = _observations()
    np.testing.assert_allclose(live(obs), policy(obs), atol=1e-6)
    assert live.observation_layout.same_names(policy.observation_layout)


def test_spec_contents(trained):
    import fingergym
    from fingergym.layout import Layout

    _, out, policy = trained
    spec = policy.spec
    env = fingergym.make_env()
    assert spec["format"] == "fingergym-policy" and spec["version"] == 1
    assert spec["obs_names"] == list(env.observation_layout.names) and spec["action_dim"] == 2
    # the header carries both layouts, which round-trip
    assert Layout.from_dict(spec["observation_layout"]) == env.observation_layout
    assert Layout.from_dict(spec["action_layout"]) == env.action_layout
    assert (spec["task"], spec["robot"]) == ("box_flipup", "finger")
    policy.check_layout(env.observation_layout, env.action_layout)
    with pytest.raises(PolicyFormatError, match="trained on observations"):
        policy.check_layout(Layout(["a", "b"]))
    assert spec["normalization"]["enabled"] and len(spec["normalization"]["mean"]) == OBS_DIM
    assert len(spec["training"]["config_sha256"]) == 64
    assert [layer["activation"] for layer in spec["layers"]] == ["tanh", "tanh", None]
    assert policy.path == out and len(policy.sha256) == 64


def test_runner_rejects_wrong_obs_shape(trained):
    _, _, policy = trained
    with pytest.raises(ValueError, match="shape"):
        policy(np.zeros(9, dtype=np.float32))
    with pytest.raises(ValueError, match="finite"):
        policy(np.full(10, np.nan, dtype=np.float32))


class _Payload:
    """Unpickling this creates a file: proof that something was executed."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickle_payload_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "policy.safetensors"
    bad.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(PolicyFormatError, match="pickle"):
        Policy.load(bad)
    assert not marker.exists()
    # the same payload inside a torch/SB3-style zip is refused too
    import zipfile

    zipped = tmp_path / "model.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("policy.pth", pickle.dumps(_Payload(str(marker))))
    with pytest.raises(PolicyFormatError, match="zip"):
        Policy.load(zipped)
    assert not marker.exists()
    # sanity: the payload IS live when unpickled, so the assertions above can fail
    pickle.loads(bad.read_bytes()).close()
    assert marker.exists()


def test_truncated_and_garbage_refused(trained, tmp_path):
    _, out, _ = trained
    blob = out.read_bytes()
    for n in (0, 5, 100, len(blob) - 10):
        p = tmp_path / f"trunc{n}.safetensors"
        p.write_bytes(blob[:n])
        with pytest.raises(PolicyFormatError, match="truncated|invalid"):
            Policy.load(p)
    p = tmp_path / "garbage.safetensors"
    p.write_bytes(struct.pack("<Q", 12) + b"not json!!!!" + b"\0" * 16)
    with pytest.raises(PolicyFormatError, match="JSON"):
        Policy.load(p)
    with pytest.raises(FileNotFoundError):
        Policy.load(tmp_path / "missing.safetensors")


def _rewrite(src: Path, dst: Path, edit) -> None:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(src), "np") as f:
        spec = json.loads(f.metadata()[METADATA_KEY])
    tensors = load_file(str(src))
    edit(spec, tensors)
    save_file(tensors, str(dst), metadata={METADATA_KEY: json.dumps(spec)})


def test_wrong_observation_size_refused(trained, tmp_path):
    _, out, _ = trained

    def nine_obs(spec, tensors):
        spec["obs_dim"] = 9
        spec["obs_names"] = spec["obs_names"][:9]
        tensors["actor.0.weight"] = tensors["actor.0.weight"][:, :9].copy()
        spec["normalization"]["mean"] = spec["normalization"]["mean"][:9]

    bad = tmp_path / "nine.safetensors"
    _rewrite(out, bad, nine_obs)
    with pytest.raises(PolicyFormatError, match="observation size"):
        Policy.load(bad)

    def bad_shape(spec, tensors):
        tensors["actor.1.weight"] = tensors["actor.1.weight"][:, :5].copy()

    bad2 = tmp_path / "shape.safetensors"
    _rewrite(out, bad2, bad_shape)
    with pytest.raises(PolicyFormatError, match="layer 1"):
        Policy.load(bad2)

    def other_format(spec, tensors):
        spec["version"] = 99

    bad3 = tmp_path / "version.safetensors"
    _rewrite(out, bad3, other_format)
    with pytest.raises(PolicyFormatError, match="version"):
        Policy.load(bad3)

    plain = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros((2, 2), np.float32)}, str(plain))
    with pytest.raises(PolicyFormatError, match="not a policy"):
        Policy.load(plain)


def test_export_cli_and_eval_json(trained, tmp_path, capsys):
    from fingergym.cli import main

    run_dir, _, _ = trained
    out = tmp_path / "cli.safetensors"
    assert main(["export", str(run_dir), "-o", str(out)]) == 0
    assert Policy.load(out).sha256
    capsys.readouterr()
    assert main(["eval", "--policy", str(out), "--episodes", "2", "--seed", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 2
    assert result["success_rate"] == np.mean([r["success"] for r in result["per_episode"]])
    assert [r["seed"] for r in result["per_episode"]] == [5, 6]
    assert result["mean_return"] == pytest.approx(
        np.mean([r["return"] for r in result["per_episode"]]), abs=1e-2)
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"a": 1}))
    assert main(["eval", "--policy", str(bad), "--episodes", "1"]) == 2
    capsys.readouterr()
    assert main(["export", str(tmp_path / "no_run"), "-o", str(out)]) == 2
    assert "no_run: no such run directory" in capsys.readouterr().err
    assert main(["export", str(run_dir), "-o", str(out), "--snapshot", "step_7"]) == 2
    err = capsys.readouterr().err
    listed = err.split("it has: ")[1].strip().split(", ")
    assert "final" in listed and "interrupted" not in listed  # only snapshots that exist
    assert all((run_dir / f"{name}.zip").exists() for name in listed)
    assert main(["export", str(run_dir), "-o", str(tmp_path / "x.pt")]) == 2
    assert "name it *.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()

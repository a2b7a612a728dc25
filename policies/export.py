"""``fingergym export RUN_DIR -o policy.safetensors``: a run's actor as a safe deploy artifact.

Reads a snapshot of the run (``best`` by default: the highest held-out success rate) without
unpickling anything: the actor weights come from the ``policy.pth`` inside the SB3 zip via
``torch.load(weights_only=True)``, the observation normalization from ``<stem>_normalize.json``.
Writes the ``fingergym-policy`` safetensors file described in :mod:`fingergym.policies.runner`.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from fingergym.policies.config import scenario_ref_path
from fingergym.policies.runner import FORMAT, METADATA_KEY, VERSION, Policy, PolicyFormatError
from fingergym.scaling import ActionScaling
from fingergym.scenario import Scenario, as_scenario

if TYPE_CHECKING:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize


def snapshot_path(run_dir: Path, which: str = "best") -> Path:
    """``best``/``final``/``interrupted``/``step_<n>`` of a run, or a ``.zip`` path as given."""
    p = Path(which)
    if p.suffix == ".zip":
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such snapshot file")
        return p
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory (`fingergym train --run-dir "
                                f"{run_dir}` makes one)")
    for candidate in (run_dir / f"{which}.zip", run_dir / "checkpoints" / f"{which}.zip"):
        if candidate.exists():
            return candidate
    if which == "best" and (run_dir / "final.zip").exists():
        return run_dir / "final.zip"
    names = snapshot_names(run_dir)
    raise FileNotFoundError(f"{run_dir}: no snapshot {which!r}; " + (
        f"it has: {', '.join(names)}" if names else "it has none (is training still running?)"))


def snapshot_names(run_dir: Path) -> list[str]:
    """The snapshots a run directory holds: ``best``, ``final``, ``interrupted``, ``step_<n>``."""
    top = sorted(p.stem for p in run_dir.glob("*.zip"))
    steps = sorted((p.stem for p in run_dir.glob("checkpoints/step_*.zip")),
                   key=lambda s: int(s.split("_")[1]) if s.split("_")[1].isdigit() else -1)
    return top + steps


def end_snapshot(run_dir: Path) -> str | None:
    """The snapshot a run ended with: ``final`` (it reached its step count) or ``interrupted``
    (time box, Ctrl-C), whichever was written last; None if neither."""
    ends = [z for z in (run_dir / "final.zip", run_dir / "interrupted.zip") if z.exists()]
    return max(ends, key=lambda z: z.stat().st_mtime).stem if ends else None


def actor_state(snapshot: Path) -> dict[str, np.ndarray]:
    """The actor's tensors from an SB3 zip, read with ``torch.load(weights_only=True)``."""
    import torch

    with zipfile.ZipFile(snapshot) as z:
        raw = z.read("policy.pth")
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def actor_layers(state: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W, b), ...] of ``mlp_extractor.policy_net`` (Linear layers) then ``action_net``."""
    idx = sorted({int(k.split(".")[2]) for k in state
                  if k.startswith("mlp_extractor.policy_net.") and k.endswith(".weight")})
    layers = [(state[f"mlp_extractor.policy_net.{i}.weight"],
               state[f"mlp_extractor.policy_net.{i}.bias"]) for i in idx]
    return layers + [(state["action_net.weight"], state["action_net.bias"])]


def actor_tensors(layers: list[tuple[np.ndarray, np.ndarray]], activation: str,
                  bounded_mean: bool) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The policy file's tensors and its ``layers`` spec for ``actor_layers``' (W, b) list."""
    last = "tanh" if bounded_mean else None  # the mean's squashing is the last activation
    tensors, layer_spec = {}, []
    for i, (w, b) in enumerate(layers):
        tensors[f"actor.{i}.weight"] = np.ascontiguousarray(w, dtype=np.float32)
        tensors[f"actor.{i}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
        layer_spec.append({"weight": f"actor.{i}.weight", "bias": f"actor.{i}.bias",
                           "activation": activation if i < len(layers) - 1 else last})
    return tensors, layer_spec


def policy_spec(scenario: Scenario, layer_spec: list[dict], norm: dict) -> dict:
    """The spec entries the runner reads: format, sizes, layouts, layers, normalization."""
    task, robot = scenario.plugins()
    obs_layout, act_layout = task.observation_layout, robot.command_layout
    return {"format": FORMAT, "version": VERSION,
            "obs_dim": obs_layout.size, "action_dim": act_layout.size,
            "obs_names": list(obs_layout.names),
            "observation_layout": obs_layout.to_dict(), "action_layout": act_layout.to_dict(),
            "task": scenario.task, "robot": scenario.robot,
            "layers": layer_spec, "normalization": norm}


def live_policy(model: PPO, vecnorm: VecNormalize | None, scenario: Scenario) -> Policy:
    """The model's actor now, with ``vecnorm``'s statistics now, as the :class:`Policy` that
    :func:`export` would write (same forward pass, numpy, picklable): e.g. to roll the policy
    in training out in other processes. The activation and the mean's squashing are read off
    the model."""
    import torch

    from fingergym.policies.bounded import BoundedMeanPolicy
    from fingergym.policies.callbacks import normalize_stats

    names = {torch.nn.Tanh: "tanh", torch.nn.ReLU: "relu"}
    activation = names[model.policy.activation_fn]
    bounded_mean = isinstance(model.policy, BoundedMeanPolicy)
    state = {k: v.detach().cpu().numpy() for k, v in model.policy.state_dict().items()}
    tensors, layer_spec = actor_tensors(actor_layers(state), activation, bounded_mean)
    spec = policy_spec(scenario, layer_spec, normalize_stats(vecnorm))
    return Policy.from_parts(Path("<policy in training>"), spec, tensors)


def export(run_dir: Path, out: Path, which: str = "best") -> Policy:
    """Write ``out`` from a run's snapshot; returns it loaded back through the runner."""
    from safetensors.numpy import save_file

    run_dir, out = Path(run_dir), Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"{out}: the output is a safetensors file; name it *.safetensors")
    snap = snapshot_path(run_dir, which)
    stem = str(snap.with_suffix(""))
    norm_path = Path(stem + "_normalize.json")
    if not norm_path.exists():
        raise FileNotFoundError(f"{norm_path}: missing (normalization statistics of {snap})")
    norm = json.loads(norm_path.read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    meta = json.loads((run_dir / "meta.json").read_text())
    activation = cfg["policy"]["activation"]
    scenario = as_scenario(scenario_ref_path(cfg["env"]["scenario"]))
    task, robot = scenario.plugins()
    obs_layout, act_layout = task.observation_layout, robot.command_layout
    layers = actor_layers(actor_state(snap))
    if layers[0][0].shape[1] != obs_layout.size or layers[-1][0].shape[0] != act_layout.size:
        raise ValueError(f"{snap}: actor maps {layers[0][0].shape[1]} -> "
                         f"{layers[-1][0].shape[0]}, expected {obs_layout.size} -> "
                         f"{act_layout.size} ({task.name} on {robot.name})")
    tensors, layer_spec = actor_tensors(layers, activation, cfg["policy"].get("bounded_mean"))
    scaling = ActionScaling.from_scenario(scenario)
    evals = []
    eval_json = run_dir / "eval.json"
    if eval_json.exists():
        evals = json.loads(eval_json.read_text())
    spec = {
        **policy_spec(scenario, layer_spec, norm), "activation": activation,
        "output": f"clip(last layer, -1, 1): the agent action in [-1, 1]^{act_layout.size}",
        "action_scaling": {"note": "information only; the station maps actions to commands",
                           "units": "m or rad (per command joint)", **scaling.as_dict()},
        "training": {"snapshot": snap.name, "run_dir": str(run_dir),
                     "config_sha256": meta.get("config_sha256"),
                     "git_commit": meta.get("git_commit"),
                     "fingergym_version": meta.get("fingergym_version"),
                     "seed": cfg.get("seed"), "eval_history_tail": evals[-3:]},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={METADATA_KEY: json.dumps(spec)})
    return Policy.load(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a training run directory")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="output file, *.safetensors (what eval/deploy --policy take)")
    parser.add_argument("--snapshot", default="best",
                        help="which snapshot of the run: best (default: the highest success "
                             "on the training-time evaluation; final if none), final, "
                             "interrupted, step_<n>, or a .zip path")


def run(args: argparse.Namespace) -> int:
    try:
        policy = export(args.run_dir, args.output, args.snapshot)
    except (FileNotFoundError, KeyError, ValueError, PolicyFormatError) as e:
        print(f"fingergym export: {e}", file=sys.stderr)
        return 2
    n = sum(w.size + b.size for w, b, _ in policy._layers)
    print(f"wrote {policy.path} ({policy.path.stat().st_size} bytes, {n} parameters, "
          f"sha256 {policy.sha256})")
    return 0

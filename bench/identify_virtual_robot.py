"""Benchmark: identify the virtual robot's hidden physics from <= 10 logged deploy episodes.

1. ``fingergym deploy --virtual-robot`` runs the shipped policy on a virtual robot whose physics
   differ from the scenario by offsets the fit is not told (default: box mass x1.2, friction
   x0.8, gains x0.85, command latency 5 -> 15 ms); every episode is logged, and each bag records
   the offsets (``virtual_robot_physics``, the ground truth);
2. ``fingergym identify``'s fit on the first ``episodes - holdout`` bags, from the scenario's
   prior (the shipped scenario);
3. each fitted value against the ground truth (within 10%), and the replay divergence of the
   held-out episodes over the fitted window before and after (>= 3x smaller). The delay's
   truth is measured, not assumed: the sim model's delay on the *default* virtual robot
   (``--baseline`` episodes, fitted the same way) plus the added command latency in command
   periods; the fit must be within one period of it;
4. with ``--retrain``: the shipped recipe (``configs/train.yaml``) trained on the identified
   scenario, then it and the shipped policy deployed on the same virtual robot, ``--compare``
   episodes each.

    nice -n 5 .venv/bin/python bench/identify_virtual_robot.py --out runs/idvr
    nice -n 5 .venv/bin/python bench/identify_virtual_robot.py --out runs/idvr --skip-deploy \\
        --retrain --compare 10

Writes ``<out>/bags/``, ``<out>/identified.yaml`` (+ report .md/.png), ``<out>/result.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFSETS = {"box_mass": 1.2, "friction": 0.8, "gain_scale": 0.85, "command_latency": 0.015}
TOLERANCE = 0.10  # relative, per parameter


def fingergym(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "fingergym"), *args]


def deploy(out: Path, episodes: int, policy: str | None, domain: int,
           offsets: bool = True) -> list[dict]:
    """Deploy on the virtual robot (with the offsets, or its defaults); returns the
    per-episode JSON lines."""
    from fingergym.hardware.testing import ros_env

    o = OFFSETS
    cmd = fingergym("deploy", "--virtual-robot", "--episodes", str(episodes), "--json",
                    "--log-dir", str(out))
    if offsets:
        cmd += [f"--robot-arg=--param-scale=box_mass={o['box_mass']}",
                f"--robot-arg=--friction-scale={o['friction']}",
                f"--robot-arg=--gain-scale={o['gain_scale']}",
                f"--robot-arg=--command-latency={o['command_latency']}"]
    if policy:
        cmd += ["--policy", policy]
    print(" ".join(cmd[1:]), flush=True)
    res = subprocess.run(cmd, env=ros_env(domain), capture_output=True, text=True, cwd=ROOT)
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    if res.returncode != 0:
        raise SystemExit(f"deploy exited {res.returncode}: {res.stderr[-2000:]}")
    return [x for x in lines if "summary" not in x]


def truth_values(meta: dict, base_meta: dict, base_delay: int, prior) -> dict[str, float]:
    """The offsets a bag recorded, as the fit's parameters; the delay [command periods]: the
    baseline's fitted delay plus the command latency added over the baseline robot's."""
    from fingergym.sim.params import nominal_params

    vr, base = meta["virtual_robot_physics"], base_meta["virtual_robot_physics"]
    nominal = nominal_params(prior).as_dict()
    period = prior.controller.period
    out = {"friction": nominal["friction"] * vr["friction_scale"],
           "gain_scale": vr["gain_scale"],
           "action_delay_periods": base_delay + (vr["command_latency"]
                                                 - base["command_latency"]) / period}
    for name, scale in vr.get("param_scale", {}).items():
        out[name] = nominal[name] * scale
    return out


DELAYS = list(range(7))  # command periods profiled (the loop's own latency is ~3-4)
FIT_SECONDS = 3.0        # the window the fit and the divergence use (fingergym identify's)


def baseline_delay(bags: list[Path]) -> tuple[int, dict]:
    """The sim model's delay on the default virtual robot (gains and delay fitted)."""
    from fingergym.replay.identify import fit
    from fingergym.replay.reader import read_episode
    from fingergym.scenario import load_scenario

    eps = [read_episode(b) for b in bags]
    f = fit(eps, load_scenario(), ["gain_scale", "action_delay_periods"], delays=DELAYS,
            fit_seconds=FIT_SECONDS)
    print(f"baseline (default virtual robot): delay {f.value['action_delay_periods']} periods, "
          f"gain scale {f.value['gain_scale']:.3f}; profile {f.delay_profile}", flush=True)
    return int(f.value["action_delay_periods"]), eps[0].metadata


def identify(bags: list[Path], out: Path, holdout: int, base: tuple[int, dict]) -> dict:
    from fingergym.replay.cli_identify import format_report, plot_fit, write_scenario
    from fingergym.replay.identify import (
        DELAY,
        as_robot_bag,
        default_params,
        fit,
        head,
        identified_scenario,
        max_divergence,
    )
    from fingergym.replay.reader import read_episode
    from fingergym.scenario import load_scenario

    eps = [read_episode(b) for b in bags]
    prior = load_scenario()  # the shipped scenario: what the fit assumes
    fit_eps, held = eps[:len(eps) - holdout], eps[len(eps) - holdout:]
    names = default_params(prior)
    print(f"fitting {names} on {len(fit_eps)} episodes, {len(held)} held out", flush=True)
    f = fit(fit_eps, prior, names, delays=DELAYS, fit_seconds=FIT_SECONDS)
    n = round(FIT_SECONDS / prior.episode.step)
    windows = [head(as_robot_bag(e), n) for e in eps]
    rows = [(e, e in held, max_divergence(w, prior, {}), max_divergence(w, prior, f.value))
            for e, w in zip(eps, windows)]
    report = format_report(f, rows, paths=[str(e.path) for e in eps], delay_name=DELAY)
    write_scenario(identified_scenario(prior, f), out / "identified.yaml", f)
    (out / "identified_report.md").write_text(report + "\n")
    plot_fit(f, rows, out / "identified_report.png")
    print(report, flush=True)

    truth = truth_values(eps[0].metadata, base[1], base[0], prior)
    period = prior.controller.period
    checks = {}
    for n, v in f.value.items():
        t = truth.get(n, f.prior[n])
        if n == DELAY:
            ok = abs(v - t) <= 1.0
            checks[n] = {"truth_periods": round(t, 3), "fitted_periods": v,
                         "error_s": round((v - t) * period, 4), "ok": ok}
        else:
            err = v / t - 1.0
            checks[n] = {"prior": f.prior[n], "truth": t, "fitted": v,
                         "std": f.std.get(n), "rel_error": round(err, 4),
                         "ok": abs(err) <= TOLERANCE, "identified": f.identifiable.get(n)}
    key = next(iter(rows[0][2]))
    before = sum(r[2][key] for r in rows if r[1]) / max(holdout, 1)
    after = sum(r[3][key] for r in rows if r[1]) / max(holdout, 1)
    return {"parameters": checks, "held_out": holdout, "fit_episodes": len(fit_eps),
            "held_out_divergence": {"channel": key, "before_m": before, "after_m": after,
                                    "ratio": before / after if after > 0 else math.inf}}


def retrain(out: Path, steps: int) -> Path:
    run = out / "retrain"
    cmd = fingergym("train", "--run-dir", str(run), "--no-progress", "--total-timesteps",
                    str(steps), "--set", f"env.scenario={out / 'identified.yaml'}")
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    policy = out / "identified_policy.safetensors"
    subprocess.run(fingergym("export", str(run), "-o", str(policy)), check=True, cwd=ROOT)
    return policy


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--episodes", type=int, default=10, help="deploy episodes (fit + held out)")
    p.add_argument("--holdout", type=int, default=4)
    p.add_argument("--baseline", type=int, default=3,
                   help="episodes on the default virtual robot (the delay's reference)")
    p.add_argument("--skip-deploy", action="store_true", help="use the bags already in OUT")
    p.add_argument("--retrain", action="store_true",
                   help="train on the identified scenario and compare on the robot")
    p.add_argument("--steps", type=int, default=400_000, help="--retrain: env steps")
    p.add_argument("--compare", type=int, default=10, help="--retrain: episodes per policy")
    p.add_argument("--domain", type=int, default=None, help="ROS domain (default: derived)")
    a = p.parse_args()
    from fingergym.hardware.testing import unique_domain_id
    from fingergym.replay.episodes import find_bags

    domain = a.domain if a.domain is not None else unique_domain_id("identify_virtual_robot")
    a.out.mkdir(parents=True, exist_ok=True)
    if not a.skip_deploy:
        deploy(a.out / "baseline", a.baseline, None, domain, offsets=False)
        deploy(a.out / "bags", a.episodes, None, domain)
    base = baseline_delay(find_bags(a.out / "baseline")[:a.baseline])
    bags = find_bags(a.out / "bags")[:a.episodes]
    result = {"offsets": OFFSETS, "baseline_delay_periods": base[0],
              **identify(bags, a.out, a.holdout, base)}
    if a.retrain:
        policy = retrain(a.out, a.steps)
        result["on_robot"] = {}
        for name, pol in (("shipped", None), ("identified", str(policy))):
            eps = deploy(a.out / f"compare_{name}", a.compare, pol, domain)
            result["on_robot"][name] = {"episodes": len(eps),
                                        "successes": sum(bool(e["success"]) for e in eps)}
    (a.out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, indent=1, default=str))
    ok = all(c["ok"] for c in result["parameters"].values()) and \
        result["held_out_divergence"]["ratio"] >= 3.0
    print("PASS" if ok else "FAIL: see result.json")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

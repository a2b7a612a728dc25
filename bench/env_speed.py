"""Gym steps per second: fingergym's env vs the reference `manipulation.envs.box_flipup`.

Both run in this process, interleaved round by round, on the same seeded random action
sequences (reset included, as in training). Prints both medians and the ratio.

The reference comes from the `manipulation` package on PyPI, installed only for this benchmark:
    .venv/bin/pip install manipulation      (or pass --install-reference)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np


def make_reference():
    warnings.filterwarnings("ignore", message=".*precision lowered.*")
    from manipulation.envs.box_flipup import BoxFlipUpEnv

    return BoxFlipUpEnv()


def make_ours(randomize: bool):
    import fingergym

    return fingergym.make_env(randomize=randomize)


def steps_per_second(env, steps: int, seed: int) -> float:
    dim = env.action_space.shape[0]
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, dim)).astype(np.float32)
    low, high = env.action_space.low, env.action_space.high
    actions = low + (actions + 1) * 0.5 * (high - low)  # the env's own action range
    t0 = time.perf_counter()
    env.reset(seed=seed)
    for a in actions:
        env.step(a)
    return steps / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    p.add_argument("--steps", type=int, default=50, help="gym steps per round per env")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--install-reference", action="store_true",
                   help="pip install the `manipulation` package if it is missing")
    args = p.parse_args(argv)
    try:
        ref = make_reference()
    except ImportError:
        if not args.install_reference:
            print("the reference env needs `pip install manipulation` "
                  "(or run with --install-reference)", file=sys.stderr)
            return 2
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "manipulation"])
        ref = make_reference()
    ours = make_ours(randomize=True)
    ours_nominal = make_ours(randomize=False)
    results: dict[str, list[float]] = {"fingergym": [], "fingergym_nominal": [], "reference": []}
    for r in range(args.rounds):
        results["reference"].append(steps_per_second(ref, args.steps, seed=r))
        results["fingergym"].append(steps_per_second(ours, args.steps, seed=r))
        results["fingergym_nominal"].append(steps_per_second(ours_nominal, args.steps, seed=r))
    med = {k: statistics.median(v) for k, v in results.items()}
    out = {
        "median_steps_per_s": med,
        "ratio_vs_reference": med["fingergym"] / med["reference"],
        "rounds": args.rounds,
        "steps_per_round": args.steps,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{'env':<22}{'median steps/s':>16}{'min':>10}{'max':>10}")
        for k, v in results.items():
            print(f"{k:<22}{med[k]:>16.1f}{min(v):>10.1f}{max(v):>10.1f}")
        print(f"ratio fingergym / reference: {out['ratio_vs_reference']:.1f}x "
              f"({args.rounds} interleaved rounds of {args.steps} steps, reset included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

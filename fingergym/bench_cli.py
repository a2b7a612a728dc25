"""``fingergym bench NAME [ARGS...]``: packaged benchmarks (scripts in bench/ cover the rest)."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "gradients": ("fingergym.gradients.bench",
                  "zero/first/alpha-order gradient estimators vs quadrature (seeds 000, 002)"),
    "policy-gradients": ("fingergym.gradients.policy_bench",
                         "REINFORCE / FoBG / AoBG / PPO policy optimization on the box "
                         "flip-up (seeds 002, 004)"),
    "planning": ("fingergym.planning.bench",
                 "smoothed quasi-dynamic planning: 1-D check, smoothed linearizations, "
                 "flip-up success (seed 003)"),
}
EPILOG = ("benchmarks:\n" + "".join(f"  {k}: {v[1]}\n" for k, v in BENCHMARKS.items())
          + "\nSpeed benchmarks of a source checkout: `make bench` (bench/env_speed.py) and "
            "the other scripts in bench/.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("name", nargs="?", choices=sorted(BENCHMARKS),
                        help="which benchmark (without one: this list)")
    parser.add_argument("args", nargs=argparse.REMAINDER,
                        help="its own arguments (see `fingergym bench NAME --help`)")


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        print("usage: fingergym bench NAME [ARGS...]\n\n" + EPILOG)
        return 0
    module = importlib.import_module(BENCHMARKS[args.name][0])
    return int(module.main(args.args) or 0)

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
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "benchmarks: " + "; ".join(f"{k}: {v[1]}" for k, v in BENCHMARKS.items())
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    parser.add_argument("args", nargs=argparse.REMAINDER,
                        help="its own arguments (see `fingergym bench NAME --help`)")


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHMARKS[args.name][0])
    return int(module.main(args.args) or 0)

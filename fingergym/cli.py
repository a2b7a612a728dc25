"""``fingergym`` command line: one subcommand per user task.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) ->
int``; this file only lists them (imported lazily, so ``--help`` stays fast).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("fingergym.demo", "run one episode in sim on built-in defaults and print its return"),
    "train": ("fingergym.policies.train", "train a PPO policy in randomized sim"),
    "eval": ("fingergym.policies.evaluate", "evaluate a policy on randomized sim episodes"),
    "export": ("fingergym.policies.export", "export a trained run to a safe deploy artifact"),
    "deploy": ("fingergym.hardware.deploy", "run an exported policy on the robot over ROS 2"),
    "bench": ("fingergym.bench_cli", "benchmarks: `fingergym bench gradients ...`"),
    "replay": ("fingergym.replay.cli_replay",
               "replay a logged episode: in sim (sim-to-real gap), on the robot, plot, Meshcat"),
    "episodes": ("fingergym.replay.episodes", "table of the logged episodes in a directory"),
    "tasks": ("fingergym.registry", "list the registered gym ids with their robot and task"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fingergym",
        description="Train a contact-rich policy in Drake (any registered task on any "
                    "registered robot), deploy it over ROS 2, replay episodes.")
    from fingergym import __version__

    parser.add_argument("--version", action="version", version=f"fingergym {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if "-h" in sys.argv or "--help" in sys.argv or name in sys.argv[1:2]:
            try:
                importlib.import_module(module).add_arguments(p)
            except ModuleNotFoundError as e:  # a command whose module is not installed
                p.set_defaults(_missing=str(e))
    return parser


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE"):  # `fingergym ... | head` ends quietly, like other CLIs
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    argv = sys.argv[1:] if argv is None else argv
    sys.argv = [sys.argv[0], *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"fingergym {args.command}: unavailable ({args._missing})", file=sys.stderr)
        return 2
    from fingergym.scenario import ScenarioError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except ScenarioError as e:  # config errors already name the file and the key
        print(f"fingergym {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

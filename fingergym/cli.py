"""``fingergym`` command line: one subcommand per user task.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) ->
int``; this file only lists them (imported lazily, so ``--help`` stays fast).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
from pathlib import Path

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("fingergym.demo", "run one episode in sim on built-in defaults and print its return"),
    "train": ("fingergym.policies.train", "train a PPO policy in randomized sim"),
    "sweep": ("fingergym.policies.sweep",
              "many training runs (configurations x seeds) on Ray Tune, one summary"),
    "eval": ("fingergym.policies.evaluate", "evaluate a policy on randomized sim episodes"),
    "export": ("fingergym.policies.export", "export a trained run to a safe deploy artifact"),
    "deploy": ("fingergym.hardware.deploy", "run an exported policy on the robot over ROS 2"),
    "bench": ("fingergym.bench_cli", "benchmarks: `fingergym bench gradients ...`"),
    "replay": ("fingergym.replay.cli_replay",
               "replay a logged episode: in sim (sim-to-real gap), on the robot, plot, Meshcat"),
    "identify": ("fingergym.replay.cli_identify",
                 "fit the scenario's physics (mass, friction, gains, delay) to logged episodes"),
    "episodes": ("fingergym.replay.episodes", "table of the logged episodes in a directory"),
    "tasks": ("fingergym.registry", "list the registered gym ids with their robot and task"),
}


def optional_path(text: str) -> Path | None:
    """argparse type: a path, or ``None`` for ``""`` (launch files pass ``""`` for "default")."""
    return Path(text) if text else None


ROS_MODULES = ("rclpy", "rosidl_runtime_py", "std_msgs", "sensor_msgs", "geometry_msgs",
               "std_srvs", "builtin_interfaces", "rmw_fastrtps_cpp")


def ros_hint(error: ModuleNotFoundError) -> str | None:
    """One line telling how to get ROS 2's Python packages, if ``error`` is about one."""
    name = (error.name or "").split(".")[0]
    if name not in ROS_MODULES:
        return None
    return (f"needs ROS 2's Python packages ({name} is missing): pip install 'fingergym[ros]', "
            f"or source your ROS 2 (e.g. source /opt/ros/<distro>/setup.bash)")


def serve_until_interrupted(message: str) -> None:
    """Print ``message``, then block until Ctrl-C or SIGTERM (a Meshcat server stays up
    meanwhile), whether or not stdin is a terminal, and also when started with SIGINT ignored
    (``cmd &`` in a script). A signal arriving as soon as the message is out is caught too."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        print(message, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print()


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
    except ModuleNotFoundError as e:
        hint = ros_hint(e)
        if hint is None:
            raise
        print(f"fingergym {args.command}: {hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

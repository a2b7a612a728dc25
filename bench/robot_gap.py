"""Which sim difference reproduces a policy's robot outcomes? Runs the policy closed-loop in sim
from each robot bag's logged start (``replay --in sim --policy``) under scenario variants and
counts, per variant, how many episodes end as they did on the robot.

    .venv/bin/python bench/robot_gap.py runs/lift_deploy5 \\
        --policy policies/shipped/gripper_lift/policy.safetensors \\
        --variant logged: --variant "rate limit:controller.rate_limit=true" \\
        --variant "rate limit + 3 periods:controller.rate_limit=true,@action_delay_periods=3"

A variant is ``name:key=value,...``: dotted scenario keys (on the bag's logged scenario) or
``@field=value`` episode-physics overrides (``replay --param``). Robot bags replay with the
scenario's nominal physics (no randomization, no observation noise).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def parse_variant(text: str) -> tuple[str, dict, dict]:
    """``name:key=value,...`` -> (name, scenario overrides, episode-physics overrides)."""
    name, _, body = text.partition(":")
    keys, params = {}, {}
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"robot_gap: variant {text!r}: {item!r} is not key=value")
        (params if key.startswith("@") else keys)[key.lstrip("@")] = yaml.safe_load(value)
    return name or body or "logged", keys, params


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bags", type=Path, help="a folder of robot bags (fingergym episodes lists it)")
    p.add_argument("--policy", type=Path, required=True, help="exported policy (.safetensors)")
    p.add_argument("--variant", action="append", default=[],
                   help="name:key=value,... (repeatable; default: the logged scenario only)")
    args = p.parse_args(argv)

    from fingergym.policies.runner import Policy
    from fingergym.replay.episodes import find_bags
    from fingergym.replay.reader import read_episode
    from fingergym.replay.replay import replay_in_sim

    policy = Policy.load(args.policy)
    variants = [parse_variant(v) for v in args.variant or ["logged:"]]
    episodes = [read_episode(b) for b in find_bags(args.bags)]
    episodes = [e for e in episodes if not e.damaged and e.steps and e.success is not None]
    if not episodes:
        print(f"robot_gap: no finished, undamaged bag under {args.bags}", file=sys.stderr)
        return 1
    width = max(len(v[0]) for v in variants)
    print(f"{len(episodes)} robot episodes, {sum(e.success for e in episodes)} succeeded on the "
          f"robot; policy {args.policy}")
    print(f"{'variant':<{width}}  sim outcome per episode (S/f)   agrees with the robot")
    print(f"{'robot':<{width}}  {''.join('S' if e.success else 'f' for e in episodes)}")
    for name, keys, params in variants:
        outcomes = []
        for ep in episodes:
            scenario = ep.scenario.replace(**keys) if keys else None
            outcomes.append(replay_in_sim(ep, scenario=scenario, overrides=params or None,
                                          policy=policy).success)
        agree = sum(o == e.success for o, e in zip(outcomes, episodes, strict=True))
        print(f"{name:<{width}}  {''.join('S' if o else 'f' for o in outcomes):<30} "
              f"{agree}/{len(episodes)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

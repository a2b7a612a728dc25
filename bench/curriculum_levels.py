"""Success of a run's snapshot against "hold still" on a curriculum's starts at given
difficulties (deterministic episodes, seeds 3 000 000...; never used in training or selection).

    .venv/bin/python bench/curriculum_levels.py runs/E --which interrupted --levels 0 0.6 1
    # the same starts with the finger at home (or under the box: 1.0)
    .venv/bin/python bench/curriculum_levels.py runs/v3 --which step_80000 --levels 0.5 \
        --set box.tool_start_probability=0.0
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

SEED = 3_000_000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--which", default="best", help="snapshot: best, final, interrupted, step_N")
    p.add_argument("--config", type=Path, default=None, help="config whose curriculum.keys "
                   "define the starts (default: configs/train_expertfree.yaml)")
    p.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="scenario key set after the curriculum's (repeatable)")
    args = p.parse_args(argv)
    import yaml

    fixed = {k: yaml.safe_load(v) for k, _, v in (a.partition("=") for a in args.set)}

    from fingergym.env import make_env
    from fingergym.policies.config import load_train_config
    from fingergym.policies.curriculum import scenario_at
    from fingergym.policies.evaluate import evaluate
    from fingergym.policies.export import export

    config = args.config or Path(__file__).resolve().parents[1] / "configs" / \
        "train_expertfree.yaml"
    cfg = load_train_config(config)
    seeds = range(SEED, SEED + args.episodes)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        policy = export(args.run_dir, Path(tmp) / "p.safetensors", args.which)
        for d in args.levels:
            scenario = scenario_at(cfg.eval_scenario(), cfg.curriculum_keys(), d)
            env = make_env(scenario.replace(**fixed) if fixed else scenario)
            result = evaluate(env, policy, seeds)
            out[d] = {"policy": result["success_rate"],
                      "hold": evaluate(env, lambda _obs, e=env: e.hold_action(),
                                       seeds)["success_rate"],
                      "failures": [{k: v for k, v in r.items() if k.startswith("final_")}
                                   for r in result["per_episode"] if not r["success"]]}
            print(f"difficulty {d}: policy {out[d]['policy']:.0%}, hold still "
                  f"{out[d]['hold']:.0%} ({args.episodes} episodes); the policy's failures "
                  f"ended at {out[d]['failures']}", flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

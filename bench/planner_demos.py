"""Planner demonstrations for the warm start: seconds per episode on 1 vs N processes.

    .venv/bin/python bench/planner_demos.py --episodes 20 --workers 1 2

Runs :func:`fingergym.planning.demos.collect_demonstrations` (the flip-up's closed-loop
planner, seeds 1 000 000..., the warm start's own) once per worker count, back to back in
this run, checks that every count returns the same demonstrations, and reports the wall-clock
and the speed-up against the first count. The machine is shared: read the ratio, measured in
one run, rather than the seconds.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--episodes", type=int, default=20, help="planner episodes per count")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                   help="process counts to time; the first is the reference")
    p.add_argument("--seed", type=int, default=1_000_000, help="first episode seed")
    p.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    args = p.parse_args(argv)

    from fingergym.planning.demos import collect_demonstrations
    from fingergym.scenario import load_scenario

    scenario = load_scenario()
    rows, first = [], None
    for n in args.workers:
        t0 = time.perf_counter()
        data = collect_demonstrations(scenario, args.episodes, args.seed, workers=n)
        seconds = time.perf_counter() - t0
        if first is None:
            first = data
        same = bool(np.array_equal(first.obs, data.obs)
                    and np.array_equal(first.expert, data.expert))
        rows.append({"workers": n, "episodes": args.episodes, "seconds": round(seconds, 1),
                     "s_per_episode": round(seconds / args.episodes, 2),
                     "success": float(np.mean(data.success)), "same_as_first": same})
    for r in rows:
        r["speedup"] = round(rows[0]["seconds"] / r["seconds"], 2)
    if args.json:
        print(json.dumps(rows))
        return 0
    print("| processes | episodes | wall-clock [s] | s / episode | speed-up | success | same |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['episodes']} | {r['seconds']} | {r['s_per_episode']} | "
              f"{r['speedup']}x | {r['success']:.0%} | {r['same_as_first']} |")
    return 0 if all(r["same_as_first"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

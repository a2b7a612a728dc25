"""A table of the logged episodes in a directory (``fingergym episodes DIR``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from .reader import BagError, read_episode

COLUMNS = ("date (UTC)", "mode", "policy", "success", "return", "steps", "length", "end reason",
           "bag")


def find_bags(root: Path) -> list[Path]:
    """Bag directories (holding an .mcap file) under ``root``, or ``root`` itself."""
    if any(root.glob("*.mcap")):
        return [root]
    return sorted({p.parent for p in root.rglob("*.mcap")})


def _row(m: dict, steps: int, truncated: bool) -> tuple[str, ...]:
    policy = str(m.get("policy") or "-")
    policy = Path(policy).name if policy != "-" else policy
    sha = m.get("policy_sha256")
    if sha:
        policy += f" ({sha[:8]})"
    success = {True: "yes", False: "no", None: "?"}[m.get("success")]
    reason = m.get("end_reason", "unfinished") + (" [truncated bag]" if truncated else "")
    ret = m.get("episode_return")
    return (str(m.get("created", "?")).replace("T", " ")[:19], str(m.get("mode", "?")), policy,
            success, "?" if ret is None else f"{float(ret):.1f}", str(steps),
            f"{steps * float(m.get('step', 0.1)):.1f} s", reason)


def _closed_summary(bag: Path) -> tuple[str, ...] | None:
    """The row from metadata.yaml's custom_data of a closed bag (no need to read messages)."""
    try:
        info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        m = json.loads(info["custom_data"]["fingergym"])
        return _row(m, int(m["steps"]), False)
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def episode_rows(root: Path) -> list[tuple[str, ...]]:
    rows = []
    for bag in find_bags(root):
        name = str(bag.relative_to(root)) if bag != root else bag.name
        quick = _closed_summary(bag)
        if quick is not None:
            rows.append((*quick, name))
            continue
        try:
            ep = read_episode(bag)
        except BagError as e:
            rows.append(("?", "?", "?", "?", "?", "?", "?", f"unreadable: {e}"[:80], name))
            continue
        rows.append((*_row({**ep.metadata, "success": ep.success, "end_reason": ep.end_reason,
                            "episode_return": ep.episode_return}, ep.steps, ep.truncated), name))
    return rows


def format_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(COLUMNS)]
    right = {"return", "steps", "length"}
    fmt = [(str.rjust if c in right else str.ljust) for c in COLUMNS]
    lines = ["  ".join(f(c, w) for f, c, w in zip(fmt, COLUMNS, widths)).rstrip()]
    lines += ["  ".join(f(v, w) for f, v, w in zip(fmt, r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path,
                        help="directory of logged episodes (searched recursively)")


def run(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        print(f"fingergym episodes: {args.dir}: no such directory", file=sys.stderr)
        return 2
    rows = episode_rows(args.dir)
    if not rows:
        print(f"fingergym episodes: no bags (*.mcap) under {args.dir}", file=sys.stderr)
        return 1
    print(format_table(rows))
    n_ok = sum(r[3] == "yes" for r in rows)
    print(f"{len(rows)} episode(s), {n_ok} succeeded")
    return 0

"""A table of the logged episodes in a directory (``fingergym episodes DIR``).

Every bag is read and checked (:func:`~fingergym.replay.reader.read_episode`), never listed from
its ``metadata.yaml`` alone: the ``check`` column says ``ok``, ``incomplete`` (cut short by a
crash: a clean prefix) or ``damaged`` (with the first problem found), and a damaged bag's
recorded outcome is shown as ``?``: it cannot be trusted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .reader import BagError, read_episode

COLUMNS = ("date (UTC)", "mode", "policy", "success", "return", "steps", "length", "end reason",
           "check", "bag")


def find_bags(root: Path) -> list[Path]:
    """Bag directories (holding an .mcap file) under ``root``, or ``root`` itself."""
    if any(root.glob("*.mcap")):
        return [root]
    return sorted({p.parent for p in root.rglob("*.mcap")})


def _row(m: dict, steps: int, status: str) -> tuple[str, ...]:
    policy = str(m.get("policy") or "-")
    policy = Path(policy).name if policy != "-" else policy
    sha = m.get("policy_sha256")
    if sha:
        policy += f" ({str(sha)[:8]})"
    success = {True: "yes", False: "no"}.get(m.get("success"), "?")
    if status.startswith("damaged"):
        success = "?"
    reason = str(m.get("end_reason", "unfinished"))[:40]
    ret = m.get("episode_return")
    try:
        ret_text = "?" if ret is None else f"{float(ret):.1f}"
        length = f"{steps * float(m.get('step', 0.1)):.1f} s"
    except (TypeError, ValueError):
        ret_text, length = "?", "?"
    return (str(m.get("created", "?")).replace("T", " ")[:19], str(m.get("mode", "?"))[:16],
            policy[:40], success, ret_text, str(steps), length, reason, status)


def episode_rows(root: Path) -> list[tuple[str, ...]]:
    rows = []
    for bag in find_bags(root):
        name = str(bag.relative_to(root)) if bag != root else bag.name
        try:
            ep = read_episode(bag)
        except BagError as e:
            rows.append(("?", "?", "?", "?", "?", "?", "?", "?", f"unreadable: {e}"[:80], name))
            continue
        status = ep.status
        if ep.damaged:
            status += f": {ep.problems[0]}"[:70]
        rows.append((*_row({**ep.metadata, "success": ep.success, "end_reason": ep.end_reason,
                            "episode_return": ep.episode_return}, ep.steps, status), name))
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
    status = [r[8].split(":")[0] for r in rows]
    print(f"{len(rows)} episode(s), {n_ok} succeeded; bags: {status.count('ok')} ok, "
          f"{status.count('incomplete')} incomplete, {status.count('damaged')} damaged, "
          f"{status.count('unreadable')} unreadable")
    return 0

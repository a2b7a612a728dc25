"""A cache of planner demonstrations on disk.

The same seeds, scenario, planner settings and code give the same episodes (each depends on
its seed only), so a second training seed, or a run started again, can reuse the first run's
instead of planning them again (150 of them take ~5 min on 2 cores). The key is a digest of
all of that, including the source of every package the episodes depend on, so any change to
the code plans anew. Files are plain ``.npz`` (no pickles), written through a rename; a file
that does not read back as expected is reported as damaged and planned again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from fingergym.scenario import Scenario, to_dict

# the packages whose files decide what a planner episode is
_SOURCES = ("fingergym", "fingergym.sim", "fingergym.planning", "fingergym.tasks",
            "fingergym.robots")
_SUFFIXES = (".py", ".urdf", ".sdf", ".yaml")
_ARRAYS = ("obs", "expert", "rewards", "lengths", "success")


def default_dir() -> Path:
    """``$FINGERGYM_CACHE/demos``, else ``$XDG_CACHE_HOME/fingergym/demos``, else
    ``~/.cache/fingergym/demos``."""
    if os.environ.get("FINGERGYM_CACHE"):
        return Path(os.environ["FINGERGYM_CACHE"]) / "demos"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fingergym" / "demos"


def source_digest() -> str:
    """sha256 over the files of the packages the episodes depend on (code and models)."""
    h = hashlib.sha256()
    for name in _SOURCES:
        root = Path(importlib.import_module(name).__file__).parent
        for path in sorted(root.rglob("*")):
            if path.suffix in _SUFFIXES and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(scenario: Scenario, episodes: int, seed: int, planner: object,
              randomize: bool) -> str:
    """Hex digest naming one set of demonstrations."""
    data = {"scenario": to_dict(scenario), "planner": dataclasses.asdict(planner),
            "episodes": episodes, "seed": seed, "randomize": randomize,
            "code": source_digest()}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def path_for(cache_dir: Path, key: str, episodes: int, seed: int) -> Path:
    return Path(cache_dir) / f"planner-{episodes}x-seed{seed}-{key[:16]}.npz"


def save(path: Path, rows: list[tuple]) -> None:
    """Write episodes ``(obs, actions, rewards (T, 1), success)`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".partial-{os.getpid()}-{path.name}")
    with open(tmp, "wb") as f:
        np.savez(f, obs=np.concatenate([r[0] for r in rows]),
                 expert=np.concatenate([r[1] for r in rows]),
                 rewards=np.concatenate([r[2] for r in rows])[:, 0],
                 lengths=np.array([len(r[1]) for r in rows]),
                 success=np.array([bool(r[3]) for r in rows]))
    os.replace(tmp, path)


def load(path: Path, episodes: int, max_steps: int, obs_dim: int,
         action_dim: int) -> list[tuple]:
    """The episodes in ``path``; ``ValueError`` (one line, "damaged") if it is not what
    :func:`save` wrote for ``episodes`` episodes of at most ``max_steps`` steps."""

    def damaged(why: str) -> ValueError:
        return ValueError(f"{path}: damaged demonstration cache ({why})")

    # bound what the file can make us allocate before reading any array
    limit = episodes * max_steps * (obs_dim + action_dim + 1) * 8 + 65536
    try:
        with zipfile.ZipFile(path) as z:
            members = {i.filename: i.file_size for i in z.infolist()}
    except (OSError, zipfile.BadZipFile) as e:
        raise damaged(str(e)) from None
    if sorted(members) != sorted(f"{a}.npy" for a in _ARRAYS):
        raise damaged(f"members {sorted(members)}")
    if sum(members.values()) > limit:
        raise damaged(f"{sum(members.values())} bytes, more than {limit}")
    try:
        with np.load(path, allow_pickle=False) as f:
            a = {k: f[k] for k in _ARRAYS}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise damaged(str(e)) from None
    lengths = a["lengths"]
    n = int(lengths.sum()) if lengths.ndim == 1 else -1
    if (lengths.shape != (episodes,) or a["success"].shape != (episodes,)
            or np.any(lengths < 1) or np.any(lengths > max_steps)
            or a["obs"].shape != (n, obs_dim) or a["expert"].shape != (n, action_dim)
            or a["rewards"].shape != (n,)
            or not all(np.all(np.isfinite(a[k])) for k in ("obs", "expert", "rewards"))):
        raise damaged("arrays of unexpected shape or non-finite values")
    cut = np.cumsum(lengths)[:-1]
    return [(o, e, r[:, None], bool(s)) for o, e, r, s in
            zip(np.split(a["obs"], cut), np.split(a["expert"], cut), np.split(a["rewards"], cut),
                a["success"], strict=True)]

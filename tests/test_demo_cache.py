"""Planner demonstrations are cached on disk: the same seeds, scenario, planner and code reuse
them; a damaged or oversized cache file is reported and planned again."""

from __future__ import annotations

import numpy as np
import pytest

from fingergym import load_scenario
from fingergym.planning import demo_cache, demos


def _scenario(**changes):
    return load_scenario().replace(**{"episode.time_limit": 0.6, **changes})


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.expert, b.expert)
    assert [r.tolist() for r in a.rewards] == [r.tolist() for r in b.rewards]
    assert a.success == b.success and a.episode.tolist() == b.episode.tolist()


@pytest.fixture
def planned(tmp_path):
    logs: list[str] = []
    first = demos.collect_demonstrations(_scenario(), 2, 1_000_000, cache_dir=tmp_path,
                                         log=logs.append)
    (path,) = tmp_path.glob("*.npz")
    return first, path, logs


def test_the_same_demonstrations_are_reused_without_planning(planned, tmp_path, monkeypatch):
    first, path, logs = planned
    assert logs == [] and path.name.startswith("planner-2x-seed1000000-")

    def no_planning(*args, **kwargs):
        raise AssertionError("planned again")

    monkeypatch.setattr(demos, "_episodes", no_planning)
    ticks = []
    again = demos.collect_demonstrations(_scenario(), 2, 1_000_000, cache_dir=tmp_path,
                                         log=logs.append,
                                         progress=lambda steps, ok: ticks.append(steps))
    _same(first, again)
    assert ticks == [6, 6] and "reused" in logs[0]


def test_other_settings_get_their_own_file(planned, tmp_path):
    first, path, _ = planned
    key = demo_cache.cache_key(_scenario(), 2, 1_000_000, demos.FlipUpConfig(), True)
    assert demo_cache.path_for(tmp_path, key, 2, 1_000_000) == path
    for other in (demo_cache.cache_key(_scenario(**{"contact.friction": 0.9}), 2, 1_000_000,
                                       demos.FlipUpConfig(), True),
                  demo_cache.cache_key(_scenario(), 2, 1_000_000,
                                       demos.FlipUpConfig(horizon=8), True),
                  demo_cache.cache_key(_scenario(), 2, 1_000_000, demos.FlipUpConfig(), False)):
        assert other != key


def test_a_damaged_cache_says_so_and_is_planned_again(planned, tmp_path):
    first, path, _ = planned
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    logs: list[str] = []
    again = demos.collect_demonstrations(_scenario(), 2, 1_000_000, cache_dir=tmp_path,
                                         log=logs.append)
    _same(first, again)
    assert len(logs) == 1 and "damaged demonstration cache" in logs[0] and str(path) in logs[0]
    # and the cache is whole again
    assert len(demo_cache.load(path, 2, 7, 10, 2)) == 2


def test_a_cache_file_cannot_make_us_allocate_more_than_its_episodes_need(planned):
    _, path, _ = planned
    with np.load(path) as f:
        arrays = dict(f)
    arrays["obs"] = np.zeros((10**6, 10))  # 80 MB for two 6-step episodes
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="damaged demonstration cache .* bytes, more than"):
        demo_cache.load(path, 2, 7, 10, 2)
    arrays["obs"] = arrays["obs"][:12]
    arrays["lengths"] = np.array([6, 7])  # the rows do not add up
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="unexpected shape"):
        demo_cache.load(path, 2, 7, 10, 2)

"""The shipped policy: loads through the runner, matches the README, still flips boxes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from fingergym.policies.runner import Policy, load_shipped_policy, shipped_policy_path

README = Path(__file__).resolve().parents[1] / "README.md"
SEEDS = range(100_000, 100_020)  # the first 20 of the README's 50 held-out episodes
# 20 of the 50 README episodes: the rate on a subset may sit below the 50-episode figure;
# 0.15 is ~1.7 binomial standard deviations at p=0.8, n=20 (and the sim is deterministic, so
# a drop below it means the policy, the env or the runner changed).
TOLERANCE = 0.15


def _readme_section() -> str:
    text = README.read_text()
    start, end = text.index("<!-- training:begin -->"), text.index("<!-- training:end -->")
    return text[start:end]


def test_shipped_policy_loads():
    policy = load_shipped_policy()
    assert policy.path == shipped_policy_path()
    assert policy.path.stat().st_size < 200_000  # small enough to commit
    a = policy(np.zeros(10, dtype=np.float32))
    assert a.shape == (2,) and a.dtype == np.float32
    assert policy.sha256 == hashlib.sha256(policy.path.read_bytes()).hexdigest()
    again = Policy.load(policy.path)
    obs = np.random.default_rng(0).normal(0, 0.2, (20, 10)).astype(np.float32)
    np.testing.assert_array_equal([again(o) for o in obs], [policy(o) for o in obs])
    assert len({tuple(policy(o)) for o in obs}) > 1  # it depends on the observation


def test_heldout_result_is_of_this_policy_and_is_what_the_readme_and_demo_say(capsys):
    """policies/shipped/heldout.json (`fingergym eval --episodes 50 --json`) is the number the
    README and `fingergym demo` print: measured on this very file, on held-out seeds."""
    from fingergym.demo import HELDOUT, heldout_result
    from fingergym.policies.evaluate import DEFAULT_EVAL_SEED

    policy = load_shipped_policy()
    result = heldout_result(policy)
    assert result is not None, (f"{HELDOUT} is not of the shipped policy; re-measure: fingergym "
                                f"eval --episodes 50 --json > policies/shipped/{HELDOUT}")
    rows = result["per_episode"]
    assert [r["seed"] for r in rows] == list(range(DEFAULT_EVAL_SEED, DEFAULT_EVAL_SEED + 50))
    assert result["episodes"] == 50
    assert result["success_rate"] == np.mean([r["success"] for r in rows])
    m = re.search(r"success rate \*\*(\d+(?:\.\d+)?)%\*\*", _readme_section())
    assert float(m.group(1)) == pytest.approx(100 * result["success_rate"])


def test_readme_names_the_shipped_file():
    section = _readme_section()
    sha = load_shipped_policy().sha256
    assert sha[:16] in section, "README's sha256 of the shipped policy is stale"
    assert "fingergym train" in section


@pytest.mark.slow
def test_shipped_policy_success_rate_matches_readme():
    import fingergym
    from fingergym.policies.evaluate import evaluate

    m = re.search(r"success rate \*\*(\d+(?:\.\d+)?)%\*\*", _readme_section())
    assert m, "README training section must state 'success rate **NN%**'"
    claimed = float(m.group(1)) / 100
    result = evaluate(fingergym.make_env(), load_shipped_policy(), SEEDS)
    assert result["success_rate"] >= claimed - TOLERANCE, result["per_episode"]
    # the demo command runs the shipped policy
    from fingergym.cli import main

    assert main(["demo", "--seed", "100000"]) == 0

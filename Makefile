# fingergym: `make demo` and `make test` each set up .venv/ on first use.
# torch is pinned and installed first: an unpinned torch resolved on a machine without it pulls
# several GB of CUDA wheels.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint bench setup clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[ros,dev,ray]"
	touch $(STAMP)

setup: $(STAMP)

# One held-out episode of the shipped policy, saved as flip.gif (`fingergym demo --meshcat`: live).
demo: $(STAMP)
	$(VENV)/bin/fingergym demo --gif flip.gif

# Tests keep ROS 2 traffic on loopback; each multi-process test picks its own ROS_DOMAIN_ID.
test: $(STAMP)
	ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST $(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The reference env (the `manipulation` package, the `bench` extra) is measured in the same run.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) bench/env_speed.py

clean:
	rm -rf $(VENV) build *.egg-info

# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench dev lock clean

DEV_STAMP := $(VENV)/.installed-dev

# The service alone (requirements.lock: what the Docker image installs too).
$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

# Plus the test and benchmark tools (requirements-dev.lock: the same pins, and more).
# The suite also exercises the example plugin as an installed package.
$(DEV_STAMP): $(STAMP) requirements-dev.lock examples/plugin-hello/pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e examples/plugin-hello
	@touch $@

## Start the service on the embedded store at 127.0.0.1:8080 (data in ~/.traitor).
run: $(STAMP)
	$(VENV)/bin/traitor $(ARGS)

## Run the whole test suite.
test: $(DEV_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## Run the benchmarks (full set); `$(PY) -m bench --quick --json` for the short one.
bench: $(DEV_STAMP)
	$(PY) -m bench $(ARGS)

## Install the test and benchmark tools into the environment (make test and make bench do it too).
dev: $(DEV_STAMP)

## Re-pin dependencies after editing pyproject.toml: everything first, then the
## service's own subset with the same versions.
lock: $(STAMP)
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra bench --python-version 3.11 -o requirements-dev.lock
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 -c requirements-dev.lock -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts

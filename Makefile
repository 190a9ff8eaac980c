# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench lock clean

TEST_STAMP := $(VENV)/.installed-test

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

# The suite also exercises the example plugin as an installed package.
$(TEST_STAMP): $(STAMP) examples/plugin-hello/pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e examples/plugin-hello
	@touch $@

## Start the service on the embedded store at 127.0.0.1:8080 (data in ~/.traitor).
run: $(STAMP)
	$(VENV)/bin/traitor $(ARGS)

## Run the whole test suite.
test: $(TEST_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## Run the benchmarks (full set); `$(PY) -m bench --quick --json` for the short one.
bench: $(STAMP)
	$(PY) -m bench $(ARGS)

## Re-pin dependencies after editing pyproject.toml.
lock: $(STAMP)
	$(PY) -m pip install -q uv && $(VENV)/bin/uv pip compile pyproject.toml --extra test --extra bench --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts

# The two commands of the README: `make demo` and `make test`. Each sets up
# what it needs first (Debian packages when root, .venv, the project).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= .demo
DEBIAN_PACKAGES := git gnupg openssh-client openssh-server iproute2 postgresql chromium

.PHONY: demo test ui bench setup system-packages clean

demo: setup
	$(BIN)/driftgate demo --workdir $(DEMO_DIR)

# Three pytest-xdist workers on two cores: the tests wait for servers and processes,
# and a third worker fills those waits (7:50 and 7:43 here, where two took 9:20 between them).
TEST_WORKERS ?= 3

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# The demo's Prefect server with its runs, on http://127.0.0.1:4200 (Ctrl-C stops it).
ui: setup
	PREFECT_HOME=$(abspath $(DEMO_DIR))/prefect PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_ANALYTICS_ENABLED=false \
	DO_NOT_TRACK=1 $(BIN)/prefect server start

setup: system-packages $(STAMP)

# Debian packages the tests and the demo use; installed only when root and missing.
system-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: missing Debian packages ($$missing); some tests will be skipped"; fi; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Benchmarks, on demand (not part of make test); figures in the README.
# bench_fleet.py takes 40-60 minutes at its 500 environments: `make bench FLEET_ARGS="--envs 50"` for a quick one.
# Every benchmark runs, whichever target fails; exit 1 at the end names those that did.
BENCHES := bench_kube.py bench_record.py bench_signing.py bench_git.py bench_render.py bench_cli.py bench_sync.py bench_fleet.py

bench: setup
	@failed=""; for b in $(BENCHES); do \
	  args=""; [ "$$b" = bench_fleet.py ] && args="$(FLEET_ARGS)"; \
	  echo "== $$b $$args"; $(BIN)/python bench/$$b $$args || failed="$$failed $$b"; \
	done; \
	if [ -n "$$failed" ]; then echo "targets not met or failed:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache

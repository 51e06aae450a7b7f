# The two entry points: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit chromium netns-tools axe screenshots bench bench-venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Two test processes: the suite mostly waits (on processes it kills and restarts,
# on timers, on PostgreSQL), so on two cores it finishes in under half the time
# (three were barely faster, and made timing bounds tighter under load).
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: lint typecheck chromium netns-tools axe
	$(BIN)/pytest -q -n $(TEST_WORKERS)

# The dashboard's browser tests drive the system's Chromium (playwright never
# downloads a browser here): Debian's package, installed when it is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium)

# The dashboard's accessibility tests run axe-core in the browser: this release's
# axe.min.js from the npm registry (npm checks the package's integrity; the file's
# hash is pinned here too), kept out of git, never fetched from a CDN.
AXE_VERSION := 4.14.1
AXE_SHA256 := 29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c
AXE := tests/dashboard/vendor/axe.min.js
axe: $(AXE)
$(AXE):
	mkdir -p $(@D)
	cd $(@D) && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null && \
		tar -xzf axe-core-$(AXE_VERSION).tgz --strip-components=1 package/axe.min.js package/LICENSE && \
		rm axe-core-$(AXE_VERSION).tgz && \
		echo "$(AXE_SHA256)  axe.min.js" | sha256sum -c --quiet

# The two-hosts tier builds network namespaces with ip (iproute2) and unshare
# (util-linux); as root, install them when they are missing.
netns-tools:
	@command -v ip >/dev/null && command -v unshare >/dev/null || \
		[ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && apt-get install -y -qq iproute2 util-linux)

# The README's pictures of the dashboard, taken by its browser test.
screenshots: $(STAMP) chromium axe
	CAIRN_SCREENSHOTS=$(CURDIR)/docs/images $(BIN)/pytest -q \
		tests/dashboard/test_browser.py tests/dashboard/test_browser_phone.py \
		tests/dashboard/test_browser_a11y.py \
		-k "invoke_watch_open_fail_and_replay or on_a_phone or nothing_serious"

# The benchmark's own environment: the peer engine (DBOS) and matplotlib, kept out
# of the project's .venv. `make bench BENCH_ARGS=--quick` for a short run.
BENCH_VENV := bench/.venv-dbos
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ARGS ?=

$(BENCH_STAMP): bench/requirements-dbos.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements-dbos.txt
	touch $(BENCH_STAMP)

bench-venv: $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python bench/run.py --dbos-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .cairn .mypy_cache .ruff_cache .pytest_cache

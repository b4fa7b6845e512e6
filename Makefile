# reelgate: the single entry point. Every target sets up what it needs itself.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint fmt bench bench-peer clean venv system-deps screenshots fuzz

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e './clients/python[cli]' -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# make run PORT=8080 HOST=0.0.0.0 (or REELGATE_PORT / REELGATE_HOST in the environment)
run: $(STAMP)
	$(BIN)/reelgate db upgrade
	$(BIN)/reelgate serve $(if $(PORT),--port $(PORT)) $(if $(HOST),--host $(HOST))

# The browser test drives Debian's Chromium (never a downloaded browser) and the
# JavaScript client's tests need Node.js 18+: install them when missing and we
# can (root with apt-get, as on CI); otherwise those tests skip (but fail under CI=true).
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "not installed:$$missing (their tests will skip)"; fi; \
	fi

# The suite runs on PYTEST_WORKERS processes (pytest-xdist); a test module stays on
# one worker (--dist loadscope), so module fixtures start once. PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 3
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

# Refresh the pictures in docs/screenshots/ (make test takes them into a temp folder).
screenshots: $(STAMP) system-deps
	REELGATE_TEST_SCREENSHOTS=docs $(BIN)/python -m pytest -q -p no:cacheprovider tests/browser

# The OpenAPI contract fuzzed far longer than make test does (every check, stateful too).
FUZZ_EXAMPLES ?= 400
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	REELGATE_TEST_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) REELGATE_TEST_FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  REELGATE_TEST_FUZZ_PHASES=examples,coverage,fuzzing,stateful \
	  $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/contract

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# reelgate side by side with the LiteLLM proxy (in its own venv, never a dependency of
# reelgate) and a bare Starlette app, in front of one emulator: the ratio table.
PEER_VENV := .venv-peer
LITELLM_VERSION ?= 1.108.7
$(PEER_VENV)/.installed-$(LITELLM_VERSION):
	@test -x $(PEER_VENV)/bin/python || $(PY) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet 'litellm[proxy]==$(LITELLM_VERSION)'
	@touch $@

# The load generator is Debian's wrk (C): installed when missing and we can (root with
# apt-get); without it, benchmarks/peer.py falls back to an httpx client that tops out
# near 130 req/s at c=64 on this machine.
bench-peer: $(STAMP) $(PEER_VENV)/.installed-$(LITELLM_VERSION)
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	  else echo "wrk not installed: falling back to the httpx client"; fi; }
	$(BIN)/python -m benchmarks.peer $(PEER_ARGS)

clean:
	rm -rf $(VENV) $(PEER_VENV) .mypy_cache .ruff_cache .pytest_cache data

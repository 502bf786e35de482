# previewd: `make run` starts the daemon on embedded defaults; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PNPM_VERSION := 10.34.9
PNPM := .tools/node_modules/.bin/pnpm
AXE_VERSION := 4.11.0
AXE := .tools/node_modules/axe-core/axe.min.js

.PHONY: setup tools run test lint unit bench package lock clean

setup: $(VENV)/.installed tools

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) scripts/check_python.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e . --config-settings editable_mode=compat
	touch $@

tools: $(PNPM) $(AXE)

$(PNPM):
	@command -v node >/dev/null || { echo "Node.js 20+ is required (apt-get install nodejs npm)"; exit 1; }
	npm install --prefix .tools --no-fund --no-audit --loglevel=error pnpm@$(PNPM_VERSION)

# The dashboard's accessibility pass (tests/e2e/test_dashboard_ux.py) injects axe-core's script into each page.
$(AXE): $(PNPM)
	npm install --prefix .tools --no-fund --no-audit --loglevel=error axe-core@$(AXE_VERSION)

# Builds are refused without the isolation layer (bubblewrap): install it first, or say exactly how.
run: setup
	scripts/install-system-deps.sh --run
	$(BIN)/previewd serve

lint: setup
	$(BIN)/ruff check daemon sandbox sync tests bench
	$(BIN)/mypy daemon sandbox sync
	$(BIN)/lint-imports --no-cache

test: setup lint
	scripts/ensure-postgres.sh
	scripts/install-system-deps.sh
	$(BIN)/pytest -q -p no:cacheprovider

unit: setup
	$(BIN)/pytest -q tests/unit

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^previewd' > requirements.lock

clean:
	rm -rf $(VENV) .tools data .pytest_cache .mypy_cache .ruff_cache

# One self-contained executable (a shiv zipapp) for $(PYTHON)'s version; see packaging/README.md.
package:
	PYTHON=$(PYTHON) packaging/build.sh dist/previewd.pyz

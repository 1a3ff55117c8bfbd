# Two entry points: `make test` (the suite) and `make audit` (the main job).
# Both build a local virtual environment with the project and the right onnxruntime extra:
# gpu when nvidia-smi works, else cpu; `make test EXTRA=cpu` picks one.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRA := $(shell nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
$(if $(filter cpu gpu,$(EXTRA)),,$(error EXTRA must be cpu or gpu, not "$(EXTRA)"))
# Names the extra the venv was built with.
STAMP := $(VENV)/.installed-$(EXTRA)

.PHONY: test audit lint venv setup clean

venv: $(STAMP)

# onnxruntime and onnxruntime-gpu overwrite each other's files, so a venv that was not built
# with this extra (built with the other one, or never finished) is rebuilt from scratch; when
# only pyproject.toml changed, pip updates the venv in place.
$(STAMP): pyproject.toml
	[ -e $(STAMP) ] || rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRA),report,ray,test]"
	touch $(STAMP)

# What pip cannot install: Debian's chromium for the report tests (installed when missing).
setup:
	.ci/setup

# The browser test leaves its screenshot of a rendered report in test-artifacts/report.png.
test: setup $(STAMP)
	$(BIN)/ruff check .
	MPS_ARTIFACTS=$${MPS_ARTIFACTS:-$(CURDIR)/test-artifacts} $(BIN)/python -m pytest -n 2

# Writes reports/index.html and reports/mps-report.json (pass or fail) and prints the path.
audit: $(STAMP)
	$(BIN)/python -m pytest -n 2 audits/ --mps-report reports

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV)

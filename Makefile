# Two entry points: `make test` (the suite) and `make audit` (the main job).
# Both build a local virtual environment with the project and the right onnxruntime extra.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRA := $(shell nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP := $(VENV)/.installed-$(EXTRA)

.PHONY: test audit lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRA),report,test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The browser test leaves its screenshot of a rendered report in test-artifacts/report.png.
test: $(STAMP)
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

# Two commands for a newcomer: `make demo` and `make test`. Both set everything up first, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# No AWS account is needed to synthesize or to run locally.
export AWS_DEFAULT_REGION ?= us-east-1
export CDK_DEFAULT_REGION ?= us-east-1

.PHONY: setup synth style typecheck lint docs test demo bench clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-lambda.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-fund --no-audit --loglevel=error
	touch $@

# A full synth: asset bundling, CloudFormation validation and cdk-nag, then cfn-lint on the result.
synth: setup
	npx cdk synth --quiet
	$(VENV)/bin/cfn-lint cdk.out/LlmBatchPipeline.template.json

# Lint and type-check before anything slow; any finding fails the build.
style: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy --strict over lambdas/, local/ and stacks/ (pyproject.toml). A cold run takes about 95 s on this machine,
# nearly all of it reading aws-cdk-lib's types; a warm one about a second.
typecheck: setup
	$(VENV)/bin/mypy

lint: style typecheck

# The docs site (docs/, mkdocs.yml) into build/site/ (gitignored); --strict fails on a broken link or anchor.
docs: setup
	$(VENV)/bin/mkdocs build --strict --quiet

# The type check runs beside the synth and the docs build: synth mostly waits on node and on the Lambda bundles'
# pip downloads, so a cold mypy costs make test little wall time on two cores.
test: style
	$(MAKE) --no-print-directory -j3 typecheck docs synth
	@if command -v chromium >/dev/null 2>&1; then \
		echo "browser test: runs (chromium at $$(command -v chromium)): tests/e2e/test_report_browser.py"; \
	else \
		echo "browser test: SKIPPED, chromium is not on PATH (apt-get install -y chromium; .ci/run installs it)"; \
	fi
	$(VENV)/bin/pytest -n 2 -p no:cacheprovider

# Leaves each run folder under demo-out/<run-id>/ (gitignored) and prints the path of each report.html.
demo: synth
	$(VENV)/bin/batch-pipeline summary
	POWERTOOLS_LOG_LEVEL=ERROR $(VENV)/bin/batch-pipeline demo --out demo-out

bench: setup
	$(PY) bench/charts.py
	$(PY) bench/intake.py
	$(PY) bench/sharding.py
	$(PY) bench/evaluate.py

clean:
	rm -rf cdk.out .cache demo-out build/site

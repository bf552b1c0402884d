# rxwatch: `make demo` and `make test` work on a fresh Debian/Ubuntu machine.
# They create .venv, install rxwatch into it (a real wheel install, not an editable one),
# install Graphviz's `dot` (and, for the browser tests, Chromium) from the OS if missing.

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT     := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
OUT     := out
SOURCES := $(shell find compiler cli simulator render grammar suite editor audit inputs cohort -type f \( -name '*.py' -o -name '*.lark' -o -path '*/assets/*' -o -name '*.yaml' \) 2>/dev/null) pyproject.toml

.PHONY: demo test setup graphviz browser bench clean apt-update

demo: setup
	@mkdir -p $(OUT)
	$(BIN)/rxwatch check protocols/*.rxw
	$(BIN)/rxwatch render protocols/anakinra_hepatotoxicity.rxw -o $(OUT)/anakinra.svg
	$(BIN)/rxwatch render protocols/anakinra_hepatotoxicity.rxw -o $(OUT)/anakinra.html
	$(BIN)/rxwatch render protocols/tocilizumab_monitoring.rxw -o $(OUT)/tocilizumab.svg
	$(BIN)/rxwatch simulate protocols/anakinra_hepatotoxicity.rxw docs/examples/anakinra-moderate.yaml --format table
	$(BIN)/rxwatch simulate protocols/anakinra_hepatotoxicity.rxw docs/examples/anakinra-moderate.yaml --format json -o $(OUT)/anakinra-moderate.trace.json
	$(BIN)/rxwatch render protocols/anakinra_hepatotoxicity.rxw --trace $(OUT)/anakinra-moderate.trace.json -o $(OUT)/anakinra-moderate.html
	@echo
	@echo "Flowcharts: $(OUT)/anakinra.svg, $(OUT)/tocilizumab.svg; viewer: $(OUT)/anakinra.html; one patient's path: $(OUT)/anakinra-moderate.html"

# Hypothesis draws its examples from a seed taken from the commit (the fuzz corpus's too, in
# .ci/run): a run of a commit is repeatable anywhere, and each commit explores new examples.
SEED := $(shell printf '%d' 0x$$(git rev-parse --short=7 HEAD 2>/dev/null) 2>/dev/null)

test: setup browser
	$(BIN)/python -m pytest -q -p no:cacheprovider --hypothesis-seed=$(or $(HYPOTHESIS_SEED),$(SEED),1)

setup: $(VENV)/.installed graphviz

$(BIN)/python:
	$(PY) -m venv $(VENV) || { $(MAKE) apt-update && $(APT) install -y python3-venv && rm -rf $(VENV) && $(PY) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python $(SOURCES)
	$(BIN)/python -m pip install -q ".[test]"
	@touch $@

apt-update:
	@[ -f $(VENV)/.apt-updated ] || { $(APT) update -qq && mkdir -p $(VENV) && touch $(VENV)/.apt-updated; }

graphviz:
	@command -v dot >/dev/null 2>&1 || { $(MAKE) apt-update && $(APT) install -y -qq graphviz; }

# Chromium and its driver, for the HTML viewer's browser tests (they skip, saying why, without them).
browser:
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || \
	  { $(MAKE) apt-update && $(APT) install -y -qq chromium chromium-driver; } || \
	  echo "warning: could not install chromium; the browser tests will be skipped"

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(OUT) build dist *.egg-info

# make demo: set up a virtual environment and declip a real photo into a before/after PNG.
# make test: install what the tests need and run them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test train-v1 quality clean

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e .
	touch $@

# torch is pinned to the CPU build in pyproject.toml (the [train] extra).
$(VENV)/.dev: $(VENV)/.runtime pyproject.toml
	$(PIP) install -e '.[train,bench,test]'
	touch $@

demo: $(VENV)/.runtime
	$(VENV)/bin/libdeclip declip examples/night_lamps.png -o demo_out/night_lamps_declip.png \
		--compare demo_out/night_lamps_before_after.png --overwrite
	$(VENV)/bin/libdeclip info examples/night_lamps.png

test: $(VENV)/.dev
	$(VENV)/bin/ruff check libdeclip training benchmarks tests
	$(VENV)/bin/mypy libdeclip
	$(PY) -m pytest -q --doctest-modules libdeclip tests

# Reproduce model v1 (see libdeclip/models/MODEL_CARD.md), then export it.
train-v1: $(VENV)/.dev
	$(PY) -m training.train --config training/configs/v1_mse.toml
	$(PY) -m training.train --config training/configs/v1_full.toml
	$(PY) -m training.export runs/v1_full/checkpoint.pt libdeclip/models/declipnet-v1.onnx

quality: $(VENV)/.dev
	$(PY) -m benchmarks.quality

clean:
	rm -rf $(VENV) demo_out build *.egg-info

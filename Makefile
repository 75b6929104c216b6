# orbitwatch: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install browser demo test test-fast bench samples clean

# Installs the package (editable) with its test and Dask extras into ./.venv.
# torch/torchvision come from PyPI as the CUDA build (~5 GB); they run on CPU too.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,dask]"
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium + chromium-driver for the console's browser tests (installed when missing).
browser:
	bash .ci/install-browser

# The main job on the committed sample scenes: alerts as GeoJSON in out/alerts.geojson, then
# how many of the planted vessels, lifeboats and fires they found (sample_scenes/*_truth.geojson).
demo: install
	$(BIN)/orbitwatch scan sample_scenes --out out/alerts.geojson --errors out/report.json
	$(BIN)/python benchmarks/eval_samples.py out/alerts.geojson --scenes sample_scenes

# The whole test suite (slow tests included: CI runs exactly this). pytest's exit code 5
# (no tests collected) fails the target like any other failure.
test: install browser
	$(BIN)/python -m pytest -q

# Everyday loop: skip the slow end-to-end tests.
test-fast: install browser
	$(BIN)/python -m pytest -q -m "not slow"

# CPU benchmarks that need nothing outside the repo (the detector evaluations on SSDD and the
# real Sentinel-2 scene read ../shared/datasets; their commands are in the README).
bench: install
	$(BIN)/python benchmarks/throughput.py --device cpu --quick
	$(BIN)/python benchmarks/eval_vessels.py --synthetic --seeds 1000-1009 --spacing 0.5
	$(BIN)/python benchmarks/eval_fire.py
	$(BIN)/python benchmarks/downlink.py
	$(BIN)/python benchmarks/ground.py

samples: install
	$(BIN)/python sample_scenes/generate.py --out sample_scenes

clean:
	rm -rf out .pytest_cache

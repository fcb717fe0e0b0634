# Set-up is part of every target: a fresh machine needs only python3 (3.11+) and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: example test test-fast bench clean data debs example-accuracy example-search screenshots

# Debian packages the tests use: Fashion-MNIST (the accuracy tests and example; nothing is
# downloaded at run time), PostgreSQL (the distributed-search test starts a throw-away
# cluster of its own on 127.0.0.1) and Chromium (the HTML report tests open the pages in it,
# headless, without network). Installed with apt when missing (as root, or through sudo).
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
DEBS = $(if $(wildcard $(FMNIST)),,dataset-fashion-mnist) $(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql) \
       $(if $(shell command -v chromium 2>/dev/null),,chromium)
NODEBS := warning: could not install Debian packages (needs apt and root or sudo); the tests that need them then check the error message (Fashion-MNIST) or are skipped outside CI (PostgreSQL, Chromium)
debs:
	@if [ -n "$(strip $(DEBS))" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(strip $(DEBS)) >/dev/null) || echo "$(NODEBS)"; \
	  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(strip $(DEBS)) >/dev/null) || echo "$(NODEBS)"; \
	  else echo "$(NODEBS)"; fi; fi
data: debs

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The main job on the bundled example: compile ResNet-20 for the generic 256x256 RRAM target.
example: $(STAMP)
	mkdir -p out
	$(BIN)/cimc compile examples/resnet20.onnx --target rram-256 -o out/resnet20.cim --report out/resnet20.json \
	  --html out/resnet20.html

# The whole test suite, slow end-to-end cases included, on 2 workers.
test: $(STAMP) debs
	$(BIN)/python -m pytest -n 2 -q

# Without the slow end-to-end cases.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

# Accuracy on the simulated chip: train on Fashion-MNIST plainly and variation-aware, compile, evaluate.
example-accuracy: $(STAMP) debs
	$(BIN)/python examples/fashion_mnist.py

# A joint network + hardware search on digits, 12 trials (runs/quick/: trials, Pareto front, plots).
example-search: $(STAMP)
	$(BIN)/cimc search examples/search/quick.toml --trials 12 --seed 0 --out runs/quick/

# The README's screenshots (docs/img/): MobileNetV3-small's report on rram-256 and a search's, in Chromium.
screenshots: $(STAMP) debs
	$(BIN)/python benchmarks/screenshots.py

bench: $(STAMP)
	$(BIN)/python benchmarks/compile_time.py

clean:
	rm -rf $(VENV) out runs .pytest_cache .hypothesis

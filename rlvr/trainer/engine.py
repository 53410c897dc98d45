"""The one adapter around DeepSpeed: build the engine, recompute log-probs, take optimizer steps,
publish full weights, save and load checkpoints.

The trainer knows nothing about the objective: it calls `rlvr.algorithms.compute_policy_loss` with the
key and params it was given. It owns only what makes the global loss right under data parallelism:
the objective divides by the global token/sequence counts of the mini-batch, and the result is
multiplied by the world size to undo DeepSpeed's gradient averaging across ranks.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import torch

from rlvr.batch import Batch
from rlvr.runtime import use_local_accelerator


def _disable_shm_allreduce() -> None:
    """DeepSpeed JIT-compiles a shared-memory all-reduce op on CPU (tens of seconds) and leaks two
    ~66 MB files in /dev/shm per run (NOTES-CPU.md). Plain gloo is fast enough for our sizes.
    `import deepspeed.comm.torch` would bind the real `torch` (a name clash), hence sys.modules."""
    import deepspeed.comm.torch  # noqa: F401  (loads the module so that sys.modules has it)

    module = sys.modules["deepspeed.comm.torch"]
    for name in ("build_shm_op", "_build_shm_op"):
        if hasattr(module, name):
            setattr(module, name, lambda *a, **k: None)
    if hasattr(module, "TorchBackend") and hasattr(module.TorchBackend, "shm_comm_op"):
        module.TorchBackend.shm_comm_op = None


def init_distributed(rank: int, world_size: int, master_addr: str, master_port: int) -> None:
    use_local_accelerator()  # this actor's devices, not the driver's, decide DeepSpeed's accelerator
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": "0",
                       "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port)})
    os.environ.pop("LOCAL_SIZE", None)
    import deepspeed

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "gloo":
        _disable_shm_allreduce()
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)


def ds_config(*, micro_batch_size: int, world_size: int, zero_stage: int, grad_clip: float, bf16: bool) -> dict:
    return {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": 1,   # we mark accumulation boundaries ourselves
        "train_batch_size": micro_batch_size * world_size,
        "zero_optimization": {"stage": zero_stage, "stage3_gather_16bit_weights_on_model_save": True},
        "gradient_clipping": grad_clip,
        "zero_allow_untested_optimizer": True,  # torch's AdamW/SGD under ZeRO: tested here, not by DeepSpeed
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


class ValueModel(torch.nn.Module):
    """PPO's critic: the policy's transformer body with a scalar head, initialised to predict 0."""

    def __init__(self, model_dir: str):
        from transformers import AutoModel

        super().__init__()
        self.body = AutoModel.from_pretrained(model_dir, dtype=torch.float32)
        self.head = torch.nn.Linear(self.body.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask=None):
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(hidden).squeeze(-1)


def _network(model_dir: str, critic: bool, gradient_checkpointing: bool) -> torch.nn.Module:
    """The trained model in fp32 (DeepSpeed casts it for bf16): the causal LM, or PPO's value model."""
    from transformers import AutoModelForCausalLM

    model = ValueModel(model_dir) if critic else AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if gradient_checkpointing:
        (model.body if critic else model).gradient_checkpointing_enable()
    return model


def _optimizer(model: torch.nn.Module, optim, lr: float) -> torch.optim.Optimizer:
    if optim.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, weight_decay=optim.weight_decay)
    # torch's AdamW: DeepSpeed's fused CPU Adam would JIT-compile for minutes
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(optim.beta1, optim.beta2), eps=optim.eps,
                             weight_decay=optim.weight_decay)


class TrainEngine:
    def __init__(self, model_dir: str, *, optim, trainer, model, world_size: int, with_reference: bool,
                 critic: bool = False, lr: float | None = None):
        """`optim`, `trainer`, `model`: the typed `OptimConfig`, `TrainerConfig`, `ModelConfig`.
        `critic=True`: the value model of PPO (the body of `model_dir` with a scalar head), trained at
        its own learning rate `lr` (None: `optim.lr`)."""
        import deepspeed

        self.world_size = world_size
        self.zero_stage = trainer.zero_stage
        self.micro_batch_size = trainer.micro_batch_size
        self.token_budget = trainer.token_budget
        self.logprob_chunk_mib = trainer.logprob_chunk_mib
        torch_dtype = torch.bfloat16 if model.dtype == "bfloat16" else torch.float32
        self.critic = critic
        network = _network(model_dir, critic, model.gradient_checkpointing)
        optimizer = _optimizer(network, optim, optim.lr if lr is None else lr)
        warmup = optim.warmup_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
        config = ds_config(micro_batch_size=self.micro_batch_size, world_size=world_size, zero_stage=self.zero_stage,
                           grad_clip=trainer.grad_clip, bf16=torch_dtype == torch.bfloat16)
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=network, optimizer=optimizer, lr_scheduler=scheduler, config=config)
        self.device = self.engine.device
        self.reference = None
        if with_reference:
            from transformers import AutoModelForCausalLM

            self.reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype).to(self.device).eval()
            self.reference.requires_grad_(False)

    # -- log-probs -------------------------------------------------------------------------------
    @torch.no_grad()
    def logprobs(self, batch: Batch, temperature: float) -> dict:
        """pi_old (and pi_ref) for `batch`, computed micro-batch by micro-batch, [N, T] each."""
        self.engine.eval()
        old = torch.zeros_like(batch.response_mask)
        ref = torch.zeros_like(batch.response_mask) if self.reference is not None else None
        micro = self.micro_batches(batch)
        idle = self._zero3_idle_count(len(micro))
        for mb in micro:  # pieces may be length-sorted: rows go back to their places
            old[mb.rows] = self._pad(self._forward(self.engine, mb, temperature)[0], batch)
            if ref is not None:
                ref[mb.rows] = self._pad(self._forward(self.reference, mb, temperature)[0], batch)
        for _ in range(idle):  # ZeRO-3 gathers parameters collectively in every forward
            self._idle_loss()
        self.engine.train()
        return {"old_logprobs": old, "ref_logprobs": ref}

    @torch.no_grad()
    def values(self, batch: Batch) -> torch.Tensor:
        """The critic's V(s_j) before each response token j, [N, T] (critic engines only)."""
        self.engine.eval()
        out = torch.zeros_like(batch.response_mask)
        micro = self.micro_batches(batch)
        idle = self._zero3_idle_count(len(micro))
        for mb in micro:
            out[mb.rows] = self._pad(self._values(mb).float().cpu(), batch)
        for _ in range(idle):
            self._idle_loss()
        self.engine.train()
        return out

    def _values(self, mb: Batch) -> torch.Tensor:
        full = self.engine(input_ids=mb.input_ids.to(self.device), attention_mask=mb.attention_mask.to(self.device))
        n, t = mb.response_mask.shape
        pos = (mb.prompt_lens[:, None] - 1 + torch.arange(t)[None, :]).clamp(max=full.shape[1] - 1).to(self.device)
        return torch.gather(full, 1, pos) * mb.response_mask.to(self.device)

    def micro_batches(self, batch: Batch) -> list[Batch]:
        """`trainer.micro_batch_size` rows each, or length-sorted pieces within `trainer.token_budget`."""
        return batch.micro_batches(self.micro_batch_size, self.token_budget) if len(batch) else []

    def _forward(self, model, mb: Batch, temperature: float, with_entropy: bool = False):
        """Response log-probs (and entropies) of `mb` under `model` (the engine or the reference), with
        the fp32 logits held at once bounded by `trainer.logprob_chunk_mib` (`rlvr.trainer.logprobs`)."""
        from rlvr.trainer.logprobs import sequence_logprobs

        network = model.module if model is self.engine else model
        logp, entropy = sequence_logprobs(model, network, mb, temperature, device=self.device,
                                          with_entropy=with_entropy, chunk_mib=self.logprob_chunk_mib)
        return logp.float().cpu() if not torch.is_grad_enabled() else logp.float(), entropy

    @staticmethod
    def _pad(t: torch.Tensor, like: Batch) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, like.response_mask.shape[1] - t.shape[1]))

    def _zero3_idle_count(self, mine: int) -> int:
        """How many empty forwards this rank owes so that every rank runs as many as the busiest one
        (needed under ZeRO-3 only; agreed before any forward)."""
        if self.zero_stage != 3 or self.world_size == 1:
            return 0
        import torch.distributed as dist

        n = torch.tensor([mine], device=self.device)
        dist.all_reduce(n, op=dist.ReduceOp.MAX)
        return int(n.item()) - mine

    # -- updates ---------------------------------------------------------------------------------
    def update(self, shards: list[Batch], counts: list[tuple[int, int]], n_micro: list[int], *,
               objective: str, objective_params: dict, loss_agg_mode: str | None, horizon: int | None,
               temperature: float) -> dict:
        """The policy's optimizer steps (see `_optimize`) with the configured objective."""
        from rlvr.algorithms import compute_policy_loss

        def loss_fn(mb: Batch, num_tokens: int, num_seqs: int):
            logp, entropy = self._forward(self.engine, mb, temperature, with_entropy=True)
            dev = self.device
            loss, metrics = compute_policy_loss(
                objective, logprobs=logp, old_logprobs=mb.old_logprobs.to(dev),
                rollout_logprobs=mb.rollout_logprobs.to(dev), advantages=mb.advantages.to(dev),
                mask=mb.response_mask.to(dev),
                ref_logprobs=mb.ref_logprobs.to(dev) if mb.ref_logprobs is not None else None,
                loss_agg_mode=loss_agg_mode, horizon=horizon, num_tokens=num_tokens, num_seqs=num_seqs,
                **objective_params)
            return loss, dict(metrics, entropy=float((entropy.sum() / mb.num_tokens).item()))

        return self._optimize(shards, counts, n_micro, loss_fn, prefix="train")

    def update_values(self, shards: list[Batch], counts: list[tuple[int, int]], n_micro: list[int], *,
                      clip_eps: float) -> dict:
        """The critic's optimizer steps: clipped regression on GAE's returns (`rlvr.algorithms.value_loss`)."""
        from rlvr.algorithms import value_loss

        def loss_fn(mb: Batch, num_tokens: int, num_seqs: int):
            dev = self.device
            return value_loss(self._values(mb), mb.values.to(dev), mb.returns.to(dev), mb.response_mask.to(dev),
                              clip_eps=clip_eps, num_tokens=num_tokens)

        return self._optimize(shards, counts, n_micro, loss_fn, prefix="critic")

    def _optimize(self, shards: list[Batch], counts: list[tuple[int, int]], n_micro: list[int], loss_fn,
                  prefix: str) -> dict:
        """One optimizer step per entry of `shards` (this rank's part of each mini-batch).

        `counts[k]` = (global masked tokens, global non-empty sequences) of mini-batch k and
        `n_micro[k]` = the number of micro-batches every rank runs for it (the same on all ranks,
        padded with empty ones, because ZeRO-3 gathers parameters collectively in each forward).
        `loss_fn(micro_batch, num_tokens, num_seqs)` gives (loss, metrics) normalised by the global counts.
        """
        sums: dict[str, float] = {}
        weights: dict[str, float] = {}
        grad_norms, skipped, real_tokens, slots = [], 0, 0, 0
        start = time.perf_counter()
        for shard, (num_tokens, num_seqs), steps in zip(shards, counts, n_micro):
            micro = self.micro_batches(shard)
            for mb in micro:
                real_tokens, slots = real_tokens + mb.padded_slots[0], slots + mb.padded_slots[1]
            micro += [None] * (steps - len(micro))
            poisoned = False  # a non-finite loss (or gradient) on any rank: this optimizer step is skipped everywhere
            for i, mb in enumerate(micro):
                self.engine.set_gradient_accumulation_boundary(i == steps - 1)
                real = not poisoned and mb is not None and mb.num_tokens > 0
                if real:
                    loss, metrics = loss_fn(mb, max(num_tokens, 1), max(num_seqs, 1))
                else:
                    loss = self._idle_loss()
                # every rank runs one forward and one all-reduce per micro-batch, whatever its data
                if self._any_rank(real and not torch.isfinite(loss).item()):
                    poisoned = True
                    self.engine.zero_grad()  # drop what earlier micro-batches accumulated
                    loss = self._idle_loss()
                elif real:
                    tokens = float(mb.num_tokens)
                    for k, v in dict(metrics, loss=float(loss.item())).items():
                        sums[k] = sums.get(k, 0.0) + float(v) * tokens
                        weights[k] = weights.get(k, 0.0) + tokens
                self.engine.backward(loss * self.world_size, scale_wrt_gas=False)
            poisoned = self._step(skip=poisoned)
            skipped += int(poisoned)
            norm = self.engine.get_global_grad_norm()
            if norm is not None and not poisoned:
                grad_norms.append(float(norm))
        out = {f"{prefix}/{k}": sums[k] / weights[k] for k in sums}
        out[f"{prefix}/loss_sum_tokens"] = weights.get("loss", 0.0)
        if grad_norms:
            out[f"{prefix}/grad_norm"] = sum(grad_norms) / len(grad_norms)
        out[f"{prefix}/optimizer_steps"] = len(shards) - skipped
        out[f"{prefix}/nonfinite_skipped_steps"] = skipped
        out[f"{prefix}/lr"] = float(self.scheduler.get_last_lr()[0]) if self.scheduler else 0.0
        out[f"perf/{prefix}_rank_s"] = time.perf_counter() - start
        out["perf/padding_frac"] = 1.0 - real_tokens / slots if slots else 0.0
        return out

    def _any_rank(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any (ranks must agree on skipping a step)."""
        import torch.distributed as dist

        t = torch.tensor([float(flag)], device=self.device)
        if dist.is_initialized() and self.world_size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def _step(self, skip: bool) -> bool:
        """An optimizer step; a skipped one runs with lr 0 so DeepSpeed's bookkeeping stays in step
        on every rank while the weights stay exactly as they were. Returns whether it was skipped:
        asked to, or because a gradient was non-finite with a finite loss (ZeRO 1-3 then drop the step
        themselves and report an infinite norm; without ZeRO the gradients are checked here)."""
        if not skip and self.zero_stage == 0:
            grads = [p.grad for p in self.engine.module.parameters() if p.grad is not None]
            skip = self._any_rank(any(not torch.isfinite(g).all() for g in grads))
            if skip:  # zeroed in place: DeepSpeed's gradient clipping needs the tensors to exist
                for g in grads:
                    g.zero_()
        if not skip:
            self.engine.step()
            norm = self.engine.get_global_grad_norm()
            return norm is not None and not math.isfinite(float(norm))
        saved = [g["lr"] for g in self.optimizer.param_groups]
        for g in self.optimizer.param_groups:
            g["lr"] = 0.0
        self.engine.step()  # also advances the LR schedule, which sets the next step's rates
        scheduled = self.scheduler.get_last_lr() if self.scheduler is not None else saved
        for g, lr in zip(self.optimizer.param_groups, scheduled):
            g["lr"] = lr
        return True

    def _idle_loss(self) -> torch.Tensor:
        """A zero loss through the model, for a rank with nothing left to do in this mini-batch."""
        out = self.engine(input_ids=torch.zeros((1, 1), dtype=torch.long, device=self.device))
        return (out if self.critic else out.logits).sum() * 0.0

    # -- weights and checkpoints -----------------------------------------------------------------
    def iter_full_weights(self, rank: int, device: str | torch.device = "cpu"):
        """(HF name, full tensor) pairs, yielded on rank 0 (every rank must iterate: under ZeRO-3 each
        parameter is gathered collectively, one at a time, so no rank ever holds a second full copy)."""
        module = self.engine.module
        if self.zero_stage != 3:
            if rank == 0:
                for name, t in module.state_dict().items():
                    yield name, t.detach().to(device).clone()
            return
        import deepspeed

        for name, param in module.named_parameters():
            with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
                if rank == 0:
                    yield name, param.detach().to(device).clone()
        if rank == 0:
            for name, buf in module.named_buffers():
                yield name, buf.detach().to(device).clone()

    def full_state_dict(self, rank: int) -> dict[str, torch.Tensor] | None:
        """HF-named full weights on CPU, on rank 0 (None elsewhere)."""
        state = dict(self.iter_full_weights(rank))
        return state if rank == 0 else None

    def save_checkpoint(self, path: str, tag: str, client_state: dict) -> None:
        self.engine.save_checkpoint(path, tag=tag, client_state=client_state)

    def load_checkpoint(self, path: str, tag: str) -> dict:
        _, client_state = self.engine.load_checkpoint(path, tag=tag)
        return client_state or {}

    def export_hf(self, out_dir: str, rank: int, tokenizer_dir: str) -> None:
        state = self.full_state_dict(rank)
        if rank != 0:
            return
        from transformers import AutoTokenizer

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        module = self.engine.module
        module.save_pretrained(out_dir, state_dict=state, safe_serialization=True)
        AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out_dir)

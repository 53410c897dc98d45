"""Handles on the Ray actors: the trainer group (one torch.distributed group) and the rollout workers.

The driver talks to groups, never to single actors: a group splits the work, calls every actor, and
puts the results back in order.
"""

from __future__ import annotations

import time

import ray

from rlvr.batch import Batch
from rlvr.orchestrator.placement import Placement
from rlvr.rollout.engine import PROMPT_SEED_STRIDE, Sample
from rlvr.rollout.worker import RolloutWorker
from rlvr.trainer.worker import CriticSettings, TrainerWorker


class TrainerGroup:
    """The trainer ranks. `cfg`: the typed `rlvr.config.Config`; `critic`: PPO's value model settings
    (`rlvr.config.resolve_critic`'s dict, or an object with `lr` and `clip_eps`), None without a critic."""

    def __init__(self, placement: Placement, model_dir: str, cfg, *, with_reference: bool, critic=None):
        addr, port = placement.master_address()
        actor = ray.remote(TrainerWorker)
        num_ranks = cfg.trainer.num_ranks
        self.critic = CriticSettings.of(critic)
        self.ranks = [
            actor.options(**placement.trainer(r)).remote(
                r, num_ranks, addr, port, model_dir, cfg, with_reference=with_reference, critic=self.critic)
            for r in range(num_ranks)
        ]
        self.micro_batch_size = cfg.trainer.micro_batch_size
        self.token_budget = cfg.trainer.token_budget
        self.info = ray.get([r.ready.remote() for r in self.ranks])

    def logprobs(self, batch: Batch, temperature: float) -> tuple[Batch, float]:
        """Fill `old_logprobs` (and `ref_logprobs`) of `batch`, each rank scoring a contiguous part."""
        results = self._all("logprobs", [r.logprobs.remote(p, temperature)
                                         for r, p in zip(self.ranks, batch.chunks(len(self.ranks)))])
        batch.old_logprobs = _stitch([res["old_logprobs"] for res in results], batch)
        batch.ref_logprobs = _stitch([res["ref_logprobs"] for res in results], batch)
        return batch, max(res["seconds"] for res in results)

    def values(self, batch: Batch) -> Batch:
        """Fill `values` of `batch` with the critic's predictions (PPO)."""
        parts = self._all("values", [r.values.remote(p) for r, p in zip(self.ranks, batch.chunks(len(self.ranks)))])
        batch.values = _stitch(parts, batch)
        return batch

    def update(self, batch: Batch, *, mini_batches: int, epochs: int, spec: dict) -> dict:
        """`epochs` passes over `mini_batches` mini-batches: one optimizer step each (and one of the
        critic's, with a critic)."""
        minis = batch.chunks(mini_batches) * epochs
        per_rank = [[] for _ in self.ranks]
        counts, n_micro = [], []
        for mini in minis:
            shards = mini.chunks(len(self.ranks))
            for rank, shard in enumerate(shards):
                per_rank[rank].append(shard)
            counts.append((mini.num_tokens, mini.num_seqs))
            # every rank runs as many micro-batches as the busiest one (see TrainEngine.update)
            n_micro.append(max(1, max(len(s.micro_batches(self.micro_batch_size, self.token_budget)) if len(s) else 0
                                      for s in shards)))
        results = self._all("update", [r.update.remote(per_rank[i], counts, n_micro, spec)
                                       for i, r in enumerate(self.ranks)])
        if self.critic is not None:
            results += self._all("update_values", [r.update_values.remote(per_rank[i], counts, n_micro)
                                                   for i, r in enumerate(self.ranks)])
        return _mean_metrics(results)

    def call(self, method: str, *args) -> list:
        """`method(*args)` on every rank (e.g. a weight-sync sender), results in rank order."""
        return self._all(method, [getattr(r, method).remote(*args) for r in self.ranks])

    def state_dict(self) -> dict:
        return ray.get([r.state_dict.remote() for r in self.ranks])[0]

    def save_checkpoint(self, path: str, tag: str, client_state: dict) -> None:
        self._all("save_checkpoint", [r.save_checkpoint.remote(path, tag, client_state) for r in self.ranks])

    def load_checkpoint(self, path: str, tag: str) -> dict:
        return ray.get([r.load_checkpoint.remote(path, tag) for r in self.ranks])[0]

    def export_hf(self, out_dir: str) -> None:
        self._all("export_hf", [r.export_hf.remote(out_dir) for r in self.ranks])

    def _all(self, method: str, refs: list):
        """ray.get on every rank. A dead rank cannot be replaced inside one torch.distributed group
        (the others hold its ZeRO shards), so the run stops with a message that says how to go on."""
        try:
            pending = list(refs)
            while pending:  # fail fast: a live rank may wait in a collective for the dead one forever
                ready, pending = ray.wait(pending, num_returns=1)
                ray.get(ready)
            return ray.get(refs)
        except ray.exceptions.RayActorError as err:
            dead = [r for r, ref in enumerate(refs) if _failed(ref)]
            raise TrainerRankDied(
                f"trainer rank(s) {dead or '?'} died during {method}; the step is abandoned. Resume from the "
                "last complete checkpoint with resume=auto (trainer.save_every sets how often one is written)."
            ) from err


class TrainerRankDied(RuntimeError):
    pass


def _failed(ref) -> bool:
    try:
        ray.get(ref, timeout=0)
        return False
    except ray.exceptions.RayActorError:
        return True
    except Exception:  # not finished, or failed for another reason
        return False


class RolloutGroup:
    """The vLLM workers. A worker that dies is replaced in its placement bundle, given the current
    weights, and its unfinished prompts are generated again (seeds follow the prompt, so the samples
    are the ones it would have produced); `max_restarts` bounds the retries of one call.

    `version` is the weight version the workers hold (set by `rlvr.weight_sync.WeightSync` alone);
    `rejoin(worker)` hands a replacement worker the current weights (set by the weight-sync transport
    that can; None: a replacement after the first sync stops the run)."""

    def __init__(self, placement: Placement, model_dir: str, cfg, *, max_restarts: int = 2):
        actor = ray.remote(RolloutWorker)
        # colocated on GPUs: vLLM sleeps while its trainer rank uses the device (CPU: nothing to free)
        self.sleep_mode = placement.colocated and placement.gpus > 0
        self._spawn = lambda i: actor.options(**placement.rollout(i, threads=cfg.rollout.cpu_threads)).remote(
            model_dir, cfg, worker_index=i, sleep_mode=self.sleep_mode)
        self.workers = [self._spawn(i) for i in range(cfg.rollout.num_workers)]
        self.info = ray.get([w.ready.remote() for w in self.workers])  # pid, node_id, node_ip per worker
        self.version = 0
        self.rejoin = None
        self.restarts = 0
        self.max_restarts = max_restarts

    def generate(self, prompts: list[list[int]], params: dict) -> tuple[list[Sample], float]:
        """Prompts are dealt to workers in contiguous, balanced slices; samples come back in prompt order."""
        bounds = [round(i * len(prompts) / len(self.workers)) for i in range(len(self.workers) + 1)]
        calls = [(i, bounds[i], prompts[bounds[i]:bounds[i + 1]]) for i in range(len(self.workers))
                 if bounds[i + 1] > bounds[i]]
        version = self.version  # the weights these calls run on (a sync never overlaps a generation)
        refs = [self.workers[i].generate.remote(part, _offset_seed(params, offset)) for i, offset, part in calls]
        results = [self._get(i, ref, "generate", part, _offset_seed(params, offset))
                   for (i, offset, part), ref in zip(calls, refs)]
        samples = []
        for (_, offset, _), res in zip(calls, results):
            for s in res["samples"]:
                s.prompt_index += offset
                s.version = version
                samples.append(s)
        return samples, max(res["seconds"] for res in results)

    def load_weights(self, method: str, *args) -> None:
        """A weight-sync receiver `method(*args)` on every worker. A worker that dies meanwhile is
        replaced and given the weights by `rejoin`, so the call is not repeated."""
        refs = [getattr(w, method).remote(*args) for w in self.workers]
        for i, ref in enumerate(refs):
            self._get(i, ref, method, *args, again=False)

    def sleep(self) -> float:
        """Before the trainer works (colocated on GPUs): every vLLM engine offloads its weights and drops
        its KV cache. A no-op when disaggregated or on CPU."""
        return self._all_workers("sleep")

    def wake_up(self) -> float:
        """Before the weight sync and generation: weights and KV cache back on the device (a no-op
        unless asleep; workers also wake themselves before they generate or load weights)."""
        return self._all_workers("wake_up")

    def _all_workers(self, method: str) -> float:
        if not self.sleep_mode:
            return 0.0
        start = time.perf_counter()
        refs = [getattr(w, method).remote() for w in self.workers]
        for i, ref in enumerate(refs):
            self._get(i, ref, method)
        return time.perf_counter() - start

    @property
    def nodes(self) -> list[str]:
        """The Ray node id of each worker, as the worker itself reported it."""
        return [info["node_id"] for info in self.info]

    def _get(self, index: int, ref, method: str, *args, again: bool = True):
        """ray.get, replacing the worker and (`again`) calling again if it died (bounded)."""
        for attempt in range(self.max_restarts + 1):
            try:
                return ray.get(ref)
            except ray.exceptions.RayActorError as err:
                if attempt == self.max_restarts:
                    raise RuntimeError(f"rollout worker {index} died {attempt + 1} times in {method}") from err
                print(f"[rlvr] rollout worker {index} died in {method} ({type(err).__name__}); replacing it",
                      flush=True)
                self._replace(index)
                if not again:  # the replacement was just given these weights
                    return None
                ref = getattr(self.workers[index], method).remote(*args)

    def _replace(self, index: int) -> None:
        if self.rejoin is None and self.version > 0:
            raise RuntimeError("a replaced rollout worker cannot rejoin the NCCL or CUDA IPC weight sync yet; "
                               "restart with resume=auto (or use trainer.weight_sync=object_store)")
        try:
            ray.kill(self.workers[index], no_restart=True)
        except Exception:  # already gone
            pass
        self.workers[index] = self._spawn(index)
        self.info[index] = ray.get(self.workers[index].ready.remote())
        if self.rejoin is not None:
            self.rejoin(self.workers[index])
        self.restarts += 1

    def engine_weights(self, index: int = 0) -> dict:
        return ray.get(self.workers[index].engine_weights.remote())


def _offset_seed(params: dict, offset: int) -> dict:
    """Seeds follow the prompt's global index, so samples do not depend on how prompts were dealt."""
    if params.get("seed") is None:
        return params
    return dict(params, seed=params["seed"] + PROMPT_SEED_STRIDE * offset)


def _stitch(parts: list, batch: Batch):
    """Per-rank [n_i, T_i] tensors (trimmed to their rows) back into one [N, T] tensor, or None."""
    import torch

    if parts[0] is None:
        return None
    width = batch.response_mask.shape[1]
    return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts])


def _mean_metrics(results: list[dict]) -> dict:
    keys = set().union(*results)
    out = {}
    for k in keys:
        values = [r[k] for r in results if k in r]
        out[k] = max(values) if k.startswith("perf/") else sum(values) / len(values)
    return out

"""rlvr: distributed RL with verifiable rewards for LLMs (Ray + vLLM + DeepSpeed).

Where things are (one step's data flow, top to bottom):

    cli.py                    `rlvr train|eval|rollout|verify|serve-verifier|plot|prepare-model`
    config/                   the typed config: schema.py (every block), algorithm.py (the algorithm block),
                              validate.py (value checks); runtime code receives these dataclasses
    orchestrator/loop.py      THE RL LOOP: train() and Loop.step = sample -> generate -> verify ->
                              advantages -> train -> sync -> log
    orchestrator/rollouts.py  where a step's scored groups come from: SyncRollouts | AsyncRollouts (ahead)
    orchestrator/algorithm.py the driver's side of the algorithm: advantages, loss spec, DCMDP dual ascent
    orchestrator/setup.py     before the loop: run dir, data, model, verifier, tracker, Ray workers
    orchestrator/groups.py    handles on the Ray actors: TrainerGroup (DeepSpeed ranks), RolloutGroup (vLLM)
    orchestrator/steps.py     step pieces: generate_and_score, to_batch, metrics
    rollout/                  the vLLM adapter (engine.py), its Ray actor (worker.py), Sample/Group
                              (samples.py), the offline sample source (offline.py, `rlvr rollout`)
    trainer/                  the DeepSpeed adapter (engine.py) and the trainer-rank actor (worker.py)
    weight_sync/              trainer -> vLLM weights: buckets.py, one module per transport
                              (object_store.py, nccl.py, cuda_ipc.py), WeightSync in __init__.py
    algorithms/               registry, advantages, objectives/ (one file per objective), loss.py (the loss
                              pipeline: masks, corrections, KL, aggregation), DCMDP controller
    verifier/                 answer extraction, math-verify equivalence, sandboxed pools, HTTP, rewards
    data/                     datasets, generated tasks, prompt templates and tokenisation, samplers
    evaluation/               one evaluator for in-training held-out eval and `rlvr eval`
    models/                   tiny local model, warm start, catalog models (SmolLM2)
    tracking.py               JSONL + W&B + TensorBoard + console progress

`algorithms/`, `verifier/` and `data/` import nothing from the orchestration (tests/unit/test_imports.py).
"""

__version__ = "0.1.0"

"""The typed config tree: dataclasses registered with Hydra's ConfigStore (see `rlvr.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

from rlvr.config.algorithm import AlgorithmConfig


@dataclass
class TinyModelConfig:
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    max_positions: int = 256


@dataclass
class WarmStartConfig:
    steps: int = 300            # supervised steps on generated problems before RL (0: none)
    lr: float = 2e-3
    batch_size: int = 32


@dataclass
class ModelConfig:
    path: Optional[str] = None  # an HF causal-LM directory or hub name; None: the tiny local model
    dtype: str = "float32"      # float32 | bfloat16
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    warmstart: WarmStartConfig = field(default_factory=WarmStartConfig)
    gradient_checkpointing: bool = False


@dataclass
class GeneratedDataConfig:
    train_size: int = 4000
    heldout_size: int = 200
    max_operand: int = 10
    ops: List[str] = field(default_factory=lambda: ["+", "-"])


@dataclass
class DataConfig:
    train_path: Optional[str] = None   # jsonl/parquet file or hub name; None: generated problems
    eval_path: Optional[str] = None
    prompt_key: Optional[str] = None   # None: the format's own field (question / problem)
    answer_key: Optional[str] = None   # None: the format's own field (answer / solution)
    format: str = "auto"               # auto | gsm8k | math | plain
    subset: Optional[str] = None       # hub data sets only: the config name (e.g. "main" for openai/gsm8k)
    train_split: str = "train"         # hub data sets only
    eval_split: str = "test"
    template: str = "plain"            # plain | boxed_instruction | chat | raw (the prompt verbatim)
    system_prompt: Optional[str] = None
    instruction: Optional[str] = None  # after the question (boxed_instruction, chat); None: the \boxed{} one
    prompts_per_step: int = 32
    eval_size: int = 200               # held-out problems scored before and after RL (0: all)
    on_bad_row: str = "error"          # error | skip
    # longer prompts are dropped at load time (counted in one line); None: the context (rollout.max_model_len,
    # else the model's max_position_embeddings) minus rollout.max_tokens
    max_prompt_tokens: Optional[int] = None
    generated: GeneratedDataConfig = field(default_factory=GeneratedDataConfig)


@dataclass
class RolloutConfig:
    n: int = 8                         # samples per prompt (the GRPO group)
    max_tokens: int = 24
    temperature: float = 1.0
    top_p: float = 1.0
    stop: List[str] = field(default_factory=list)
    num_workers: int = 1
    kv_cache_gb: float = 1.0           # CPU KV-cache space per worker
    cpu_threads: int = 2               # CPU only: torch threads of each vLLM worker
    gpu_memory_utilization: float = 0.5
    max_model_len: Optional[int] = None
    enforce_eager: bool = True
    eval_temperature: float = 1.0      # held-out accuracy: mean over eval_n samples at this temperature
    eval_n: int = 4                    # (greedy accuracy is reported beside it)
    source: str = "generate"           # generate (vLLM, on-policy) | offline (samples logged by `rlvr rollout`)
    offline_path: Optional[str] = None # rollout.source=offline: the parquet file (or directory of them)


@dataclass
class TrainerConfig:
    total_steps: int = 80
    num_ranks: int = 2
    zero_stage: int = 2
    micro_batch_size: int = 32         # sequences per forward/backward on one rank (token_budget=0)
    token_budget: int = 0              # >0: micro-batches of length-sorted sequences up to this many tokens
    # fp32 logits held at once for log-probs/entropy: a micro-batch whose logits fit is computed whole, a longer
    # one in chunks of tokens recomputed in backward (peak memory grows with the chunk, not with T x vocab)
    logprob_chunk_mib: int = 512
    grad_clip: float = 1.0
    save_every: int = 0                # 0: only at the end
    save_every_minutes: float = 30.0   # also checkpoint when this much wall-clock time passed since the last (0: off)
    keep_checkpoints: int = 3          # the last k complete checkpoints are kept (0: all)
    max_nonfinite_steps: int = 3       # stop after this many optimizer steps in a row skipped for NaN/inf
    check_weight_sync: bool = False    # after every sync, compare vLLM's weights with the trainer's (slow)
    weight_sync: str = "auto"          # auto | object_store | nccl (GPU, disaggregated) | cuda_ipc (GPU, colocated)


@dataclass
class OptimConfig:
    name: str = "adamw"                # adamw | sgd (sgd: plain gradient steps, for exact checks)
    lr: float = 3e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    warmup_steps: int = 0


@dataclass
class VerifierConfig:
    mode: str = "process"              # inline | process | ray | http
    workers: int = 2
    timeout_s: float = 5.0
    max_chars: int = 20000
    memory_mb: int = 1024
    strict: bool = False
    answer_format: str = "auto"        # auto | boxed | answer_line | gsm8k
    url: Optional[str] = None
    token: Optional[str] = None
    format_weight: float = 0.1
    # algorithm.reward=custom: "pkg.module:function" or a list of them, each called as TRL's GRPOTrainer calls a
    # reward function (fn(prompts, completions, <data columns>, verdicts, **kwargs) -> list[float | None]);
    # Any: a string or a list of strings (OmegaConf has no Union)
    custom_reward: Any = None
    reward_weights: Optional[List[float]] = None  # one weight per custom_reward function; None: all 1.0


@dataclass
class ClusterConfig:
    address: Optional[str] = None      # None: start a local Ray; "auto" or host:port: join a cluster
    num_cpus: Optional[int] = None     # for a local Ray
    cpus_per_actor: float = 0.5        # fractional CPUs let a 2-core machine place every actor
    gpus_per_actor: float = 0.0
    placement: str = "disaggregated"   # disaggregated (own devices) | colocated (trainer and vLLM share; vLLM sleeps)


@dataclass
class WandbConfig:
    mode: str = "offline"              # online | offline | disabled
    project: str = "rlvr"
    entity: Optional[str] = None
    group: Optional[str] = None
    name: Optional[str] = None
    tags: List[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    backends: List[str] = field(default_factory=lambda: ["jsonl", "wandb"])
    wandb: WandbConfig = field(default_factory=WandbConfig)
    progress: bool = True
    samples_every: int = 10            # a W&B table of sample completions with rewards every k steps (0: never)


@dataclass
class OrchestratorConfig:
    mode: str = "sync"                 # sync (exactly on-policy) | async (generation runs ahead of training)
    max_staleness: int = 1             # async: samples at most this many weight versions old are trained on


@dataclass
class EvalScheduleConfig:
    every_steps: int = 0               # held-out evaluation every k steps during training (0: before/after only)


@dataclass
class Config:
    output_dir: str = MISSING
    cache_dir: str = ".cache"
    seed: int = 0
    resume: Optional[str] = None       # auto: the latest complete checkpoint in output_dir; or a step_N dir
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    orchestrator: OrchestratorConfig = field(default_factory=OrchestratorConfig)
    eval: EvalScheduleConfig = field(default_factory=EvalScheduleConfig)


GROUPS = {"algorithm": AlgorithmConfig, "model": ModelConfig, "data": DataConfig, "rollout": RolloutConfig,
          "trainer": TrainerConfig, "verifier": VerifierConfig, "cluster": ClusterConfig,
          "logger": LoggerConfig}



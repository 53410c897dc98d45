"""The units of a rollout: one sampled response (`Sample`) and one prompt with its scored samples (`Group`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Sample:
    """One sampled response: token ids, the log-probs vLLM sampled them with (mu), and why it stopped."""

    prompt_index: int
    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str
    version: int = 0  # the weight version that generated it (set by the rollout group)


@dataclass
class Group:
    """One prompt and its n scored samples."""

    problem: dict
    prompt_ids: list[int]
    samples: list[Sample] = field(default_factory=list)
    results: list = field(default_factory=list)     # VerifyResult per sample
    rewards: list[float] = field(default_factory=list)

    @property
    def correct(self) -> list[bool]:
        return [r.reason == "correct" for r in self.results]

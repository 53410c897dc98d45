"""The driver's side of the chosen algorithm: advantages (with PPO's critic when GAE needs one), what the
trainer needs to compute the loss, and DCMDP's dual ascent between steps. The maths is in `rlvr.algorithms`."""

from __future__ import annotations

from rlvr import algorithms as A
from rlvr.batch import Batch
from rlvr.config import Config, correction_params, resolve_critic


class AlgorithmDriver:
    def __init__(self, cfg: Config):
        self.cfg, self.algo = cfg, cfg.algorithm
        self.dcmdp = A.DCMDPController.from_config(self.algo.dcmdp) if self.algo.dcmdp.enabled else None

    @property
    def needs_reference(self) -> bool:
        """A KL term (in the loss or in the reward) needs pi_ref: the trainer then holds a frozen copy."""
        algo = self.algo
        return A.needs_reference(algo.objective, algo.objective_params, algo.advantage, algo.advantage_params)

    @property
    def critic(self) -> dict | None:
        """PPO's value model settings when the advantage estimator is GAE (None: no critic)."""
        return resolve_critic(self.algo, self.cfg.optim)

    def advantages(self, batch: Batch, rewards, trainers) -> Batch:
        """Rewards -> per-token advantages (GAE: the critic's values first, and the returns it regresses)."""
        algo = self.algo
        params = dict(algo.advantage_params)
        if trainers.critic is not None:
            batch = trainers.values(batch)
            params["values"] = batch.values
            batch.returns = A.gae_returns(rewards, batch.response_mask, batch.values, old_logprobs=batch.old_logprobs,
                                          ref_logprobs=batch.ref_logprobs, **algo.advantage_params)
        batch.advantages = A.compute_advantages(algo.advantage, rewards, batch.group_index, mask=batch.response_mask,
                                                old_logprobs=batch.old_logprobs, ref_logprobs=batch.ref_logprobs,
                                                **params)
        return batch

    def update_args(self) -> dict:
        """`TrainerGroup.update`'s schedule and loss spec: ppo_epochs x mini_batches optimizer steps."""
        return {"mini_batches": self.algo.mini_batches, "epochs": self.algo.ppo_epochs, "spec": self.spec()}

    def spec(self) -> dict:
        """What the trainer needs to compute the loss: registry key, params, aggregation, temperature."""
        algo, rollout = self.algo, self.cfg.rollout
        params = dict(algo.objective_params)
        correction = correction_params(algo.correction)
        if correction.get("mode", "none") != "none":
            params["correction"] = correction
        if self.dcmdp is not None:
            params.update(dcmdp_lambda=self.dcmdp.value, tolerance=self.dcmdp.tolerance)
        return {"objective": algo.objective, "objective_params": params, "loss_agg_mode": algo.loss_agg_mode,
                "horizon": rollout.max_tokens, "temperature": rollout.temperature}

    def after_update(self, train_metrics: dict) -> dict:
        """DCMDP: the multiplier's dual-ascent step on this step's measured constraint."""
        if self.dcmdp is None:
            return {}
        return {f"train/{k}": v for k, v in self.dcmdp.update(train_metrics["train/dcmdp_delta"]).items()}

    def state_dict(self) -> dict | None:
        return self.dcmdp.state_dict() if self.dcmdp is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.dcmdp is not None and state:
            self.dcmdp.load_state_dict(state)


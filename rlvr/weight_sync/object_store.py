"""The `object_store` transport (CPU, and the fallback anywhere): trainer rank 0 puts the full state dict
in Ray's object store once; every rollout worker fetches it zero-copy and reloads in place.

It is also the one transport a replacement rollout worker can rejoin: the latest weights stay in the
object store, so a worker that died is handed them again (`RolloutGroup.rejoin`).
"""

from __future__ import annotations

import time

import ray


class ObjectStoreSender:
    """Mixed into the trainer actor (`TrainerWorker`: `self.engine`, `self.rank`)."""

    def publish_weights(self) -> list | None:
        """Rank 0 returns [ObjectRef] to the full weights (the list stops Ray from resolving it)."""
        state = self.engine.full_state_dict(self.rank)
        return [ray.put(state)] if state is not None else None


class ObjectStoreReceiver:
    """Mixed into the rollout actor (`RolloutWorker`: `self.engine`)."""

    def load_published_weights(self, weights_ref: list) -> float:
        """`weights_ref` is a one-element list holding an ObjectRef, so Ray passes the reference
        through and this actor fetches the tensors itself (zero-copy from the object store)."""
        start = time.perf_counter()
        weights = ray.get(weights_ref[0])
        self.engine.wake_up()
        self.engine.load_weights(weights.items())
        return time.perf_counter() - start


class ObjectStoreSync:
    """Driver side: publish once, every worker loads; a replaced worker loads the same reference."""

    def __init__(self, trainers, rollouts, placement=None, bucket_bytes: int | None = None):
        self.trainers, self.rollouts = trainers, rollouts
        self.weights_ref = None  # the latest published weights

    def push(self) -> None:
        self.weights_ref = self.trainers.call("publish_weights")[0]
        self.rollouts.rejoin = self.load_into
        self.rollouts.load_weights("load_published_weights", self.weights_ref)

    def load_into(self, worker) -> None:
        """The current weights into a fresh worker (one that replaced a dead one)."""
        ray.get(worker.load_published_weights.remote(self.weights_ref))

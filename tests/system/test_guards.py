"""Guards: a non-finite loss or gradient skips the update on every rank and, repeated, stops the run clearly."""

from __future__ import annotations

import textwrap

import pytest

from .helpers import read_metrics, run_train

pytestmark = pytest.mark.slow

NAN_OBJECTIVE = textwrap.dedent('''
    from rlvr.algorithms import register_objective

    @register_objective("nan_test", default_agg="token-mean", anchor="recompute", defaults={})
    def nan_test(inp):
        """Always NaN: stands in for a diverged objective."""
        return inp.logprobs * float("nan")

    @register_objective("inf_grad_test", default_agg="token-mean", anchor="recompute", defaults={})
    def inf_grad_test(inp):
        """A finite loss (sqrt(0) = 0 added) whose gradient is infinite: a silent divergence."""
        import torch

        return -inp.advantages * inp.ratio + torch.sqrt(inp.logprobs - inp.logprobs.detach())
''')
PRESET = """# @package algorithm
name: {name}
advantage: grpo
objective: {name}
objective_params: {{}}
plugins: [nan_objective_test]
"""


@pytest.mark.parametrize("objective,zero_stage", [("nan_test", 2), ("inf_grad_test", 2), ("inf_grad_test", 0)])
def test_nonfinite_loss_skips_updates_then_stops(tmp_path, cache_dir, monkeypatch, objective, zero_stage):
    """A NaN loss is caught before backward; an infinite gradient behind a finite loss after it (by
    DeepSpeed's overflow check under ZeRO, by rlvr's own check without ZeRO)."""
    (tmp_path / "nan_objective_test.py").write_text(NAN_OBJECTIVE)
    (tmp_path / "conf" / "algorithm").mkdir(parents=True)
    (tmp_path / "conf" / "algorithm" / f"{objective}.yaml").write_text(PRESET.format(name=objective))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    out = tmp_path / "run"
    proc = run_train(out, cache_dir, f"hydra.searchpath=[file://{tmp_path / 'conf'}]", f"algorithm={objective}",
                     f"trainer.zero_stage={zero_stage}", "trainer.total_steps=6", "trainer.max_nonfinite_steps=2",
                     "trainer.check_weight_sync=true", check=False)
    assert proc.returncode != 0
    assert "non-finite loss or gradient in 2 steps in a row" in proc.stdout + proc.stderr
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == [1]  # step 2 raised before it was logged
    assert metrics[0]["train/nonfinite_skipped_steps"] >= 1
    assert metrics[0]["train/optimizer_steps"] == 0

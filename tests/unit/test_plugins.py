"""A user's objective in their own module, named in `algorithm.plugins` (the README's example)."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from rlvr.algorithms import OBJECTIVES, compute_policy_loss
from rlvr.config import ConfigError, compose
from rlvr.plugins import import_plugins

PLUGIN = textwrap.dedent('''
    from rlvr.algorithms import register_objective

    @register_objective("clipped_pg_test", default_agg="token-mean", anchor="recompute", defaults={"clip": 0.2})
    def clipped_pg(inp, *, clip):
        """A clipped policy gradient."""
        return -inp.advantages * inp.ratio.clamp(1 - clip, 1 + clip)
''')

PRESET = """# @package algorithm
name: my_algo
advantage: grpo
objective: clipped_pg_test
objective_params: {{clip: 0.1}}
plugins: [{module}]
"""


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "my_losses_test.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_losses_test"
    sys.modules.pop("my_losses_test", None)
    if "clipped_pg_test" in OBJECTIVES:
        OBJECTIVES.unregister("clipped_pg_test")


def test_plugin_objective_registers_and_computes(plugin_module, tmp_path):
    import_plugins([plugin_module])
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    old = torch.tensor([[-1.0, -2.0]])
    loss, _ = compute_policy_loss("clipped_pg_test", logprobs=logp, old_logprobs=old, rollout_logprobs=old,
                                  advantages=torch.tensor([1.0]), mask=torch.ones(1, 2))
    loss.backward()
    # token-mean of -A * r with r = 1: d/dlogp = -A * r / 2 per token
    assert torch.allclose(logp.grad, torch.tensor([[-0.5, -0.5]]))
    (tmp_path / "conf" / "algorithm").mkdir(parents=True)
    (tmp_path / "conf" / "algorithm" / "my_algo.yaml").write_text(PRESET.format(module=plugin_module))
    cfg = compose([f"output_dir={tmp_path}", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "algorithm=my_algo"])
    assert cfg.algorithm.objective == "clipped_pg_test"
    assert cfg.algorithm.objective_params == {"clip": 0.1}


def test_missing_plugin_is_a_clear_error():
    with pytest.raises(ImportError, match="algorithm.plugins"):
        import_plugins(["no_such_module_xyz"])


def test_unregistered_objective_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="algorithm.objective"):
        compose([f"output_dir={tmp_path}", "algorithm.objective=clipped_pg_test"])

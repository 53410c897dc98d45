"""Config composition and start-up errors: one clear line naming the key, before anything starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rlvr.config import ConfigError, compose


def test_default_config_composes_and_validates(tmp_path):
    cfg = compose([f"output_dir={tmp_path}"])
    assert cfg.algorithm.name == "grpo"
    assert cfg.trainer.zero_stage == 2 and cfg.trainer.num_ranks == 2
    assert cfg.logger.wandb.mode == "offline"


@pytest.mark.parametrize("override, key", [
    ("trainer.zero_stage=4", "trainer.zero_stage"),
    ("data.prompts_per_step=-2", "data.prompts_per_step"),
    ("data.train_path=/nonexistent/train.jsonl", "data.train_path"),
    ("rollout.top_p=1.5", "rollout.top_p"),
    ("algorithm.objective=nope", "algorithm.objective"),
    ("algorithm.objective_params={clip_eps_low: -1}", "algorithm.objective_params"),
    ("+algorithm.critic.lr=0.1", "algorithm.critic"),
    ("rollout.source=offline", "rollout.offline_path"),
    ("orchestrator.mode=later", "orchestrator.mode"),
    ("verifier.mode=http", "verifier.url"),
    ("data.instruction=Answer.", "data.instruction"),          # the plain template has no instruction
    ("data.system_prompt=Hi", "data.system_prompt"),           # only the chat template has a system message
])
def test_bad_values_name_the_key(tmp_path, override, key):
    with pytest.raises(ConfigError) as err:
        compose([f"output_dir={tmp_path}", override])
    message = str(err.value)
    assert key in message and "\n" not in message


@pytest.mark.parametrize("override, expected", [
    ("trainer.zero_stage=4", "trainer.zero_stage"),
    ("algorithm=nope", "algorithm"),
    ("trainer.no_such_key=1", "no_such_key"),
    ("data.train_path=/nonexistent/train.jsonl", "data.train_path"),
])
def test_cli_stops_at_start_up(tmp_path, override, expected):
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "train", f"output_dir={tmp_path}", override],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert expected in proc.stderr
    assert not (tmp_path / "metrics.jsonl").exists()


def test_resolved_versions_are_the_pinned_ones():
    """math-verify's antlr4_13_2 extra silently downgrades Hydra to 0.11 (NOTES-CPU.md)."""
    import hydra
    import omegaconf
    from packaging.version import Version

    assert Version(hydra.__version__) >= Version("1.3")
    assert Version(omegaconf.__version__) >= Version("2.3")


@pytest.mark.parametrize("override, message", [
    ("+trainer.total_step=500", "trainer.total_step: unknown key; did you mean trainer.total_steps?"),
    ("+bogus_block.x=1", "bogus_block: unknown key; valid:"),
    ("+algorithm.dcmdp.lambda_int=0.2",
     "algorithm.dcmdp.lambda_int: unknown key; did you mean algorithm.dcmdp.lambda_init?"),
])
def test_keys_outside_the_schema_are_refused_with_a_hint(tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        compose([f"output_dir={tmp_path}", override])
    assert message in str(err.value)


def test_free_form_params_still_take_new_keys(tmp_path):
    cfg = compose([f"output_dir={tmp_path}", "+algorithm.advantage_params.norm_by_std=false"])
    assert cfg.algorithm.advantage_params == {"norm_by_std": False}

"""`rlvr eval`: the metric functions against hand-made cases, the config errors, and one end-to-end run
through the real CLI (vLLM in-process) whose numbers are recomputed here from samples.jsonl."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from statistics import fmean

import pytest

from rlvr.evaluation import (
    EvalError,
    eval_main,
    majority_vote,
    normalize_answer,
    parse_overrides,
    pass_at_k,
    resolve_model_dir,
    score_problems,
)

# ------------------------------------------------------------------------------------------ pass@k


def _brute_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """The fraction of the k-subsets of n samples (c of them correct) holding a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(samples[i] for i in s) for s in subsets), len(subsets))


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 0, 1, 0.0),            # nothing correct
    (5, 5, 3, 1.0),            # everything correct
    (4, 0, 4, 0.0),            # n == k, c == 0
    (4, 1, 4, 1.0),            # n == k: any correct sample is in the one subset
    (4, 3, 4, 1.0),
    (10, 3, 1, 0.3),           # k == 1 is the plain accuracy c/n
    (4, 2, 2, 5 / 6),          # 1 - C(2,2)/C(4,2)
    (8, 1, 4, 0.5),            # 1 - C(7,4)/C(8,4) = 1 - 35/70
    (10, 2, 5, 1 - 56 / 252),  # 1 - C(8,5)/C(10,5)
    (6, 4, 3, 1.0),            # n - c < k: every subset hits
])
def test_pass_at_k_hand_made(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_formula_and_enumeration():
    for n in range(1, 9):
        for k in range(1, n + 1):
            for c in range(n + 1):
                got = pass_at_k(n, c, k)
                formula = 1 - math.comb(n - c, k) / math.comb(n, k)
                # Chen et al.'s numerically stable product form
                product = 1.0 if n - c < k else 1 - math.prod(1 - k / i for i in range(n - c + 1, n + 1))
                assert got == pytest.approx(formula, abs=1e-12)
                assert got == pytest.approx(product, abs=1e-12)
                assert got == pytest.approx(float(_brute_pass_at_k(n, c, k)), abs=1e-12)
    assert pass_at_k(200, 1, 1) == pytest.approx(0.005)
    assert 0.0 < pass_at_k(1000, 1, 100) < 1.0  # large n: exact binomials, no overflow


@pytest.mark.parametrize(("n", "c", "k"), [(4, 0, 5), (4, 0, 0), (4, 5, 2), (4, -1, 2)])
def test_pass_at_k_rejects_impossible(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# ------------------------------------------------------------------------------------ majority vote


def test_majority_vote_cases():
    assert majority_vote(["3", "4", "3", "5"], [1, 0, 1, 0]) == ("3", True)
    assert majority_vote(["4", "3", "4", "3", "4"], [0, 1, 0, 1, 0]) == ("4", False)
    # a tie goes to the answer seen first
    assert majority_vote(["7", "3", "3", "7"], [0, 1, 1, 0]) == ("7", False)
    assert majority_vote(["3", "7", "7", "3"], [1, 0, 0, 1]) == ("3", True)
    # samples without an answer do not vote, even when they are the majority
    assert majority_vote([None, None, None, "3"], [0, 0, 0, 1]) == ("3", True)
    assert majority_vote([None, "", "  "], [0, 0, 0]) == (None, False)
    assert majority_vote([], []) == (None, False)
    # equivalent spellings are one answer
    assert majority_vote(["1,000", "999", "1000", "$1000$"], [1, 0, 1, 1]) == ("1000", True)
    assert majority_vote(["3.0", "4", "3", "4", " 3 "], [1, 0, 1, 0, 1])[0] == "3"
    assert majority_vote(["\\dfrac{1}{2}", "\\frac{1}{2}", "0.5"], [1, 1, 1])[0] == "\\frac{1}{2}"
    # the verdict is the first sample of the winning group's
    assert majority_vote(["5", "5", "6"], [0, 1, 1]) == ("5", False)
    with pytest.raises(ValueError):
        majority_vote(["1"], [1, 0])


def test_normalize_answer():
    assert normalize_answer(None) is None
    assert normalize_answer(" $ 12 $ ") == "12"
    assert normalize_answer("12.50") == "12.5"
    assert normalize_answer("+0.50") == "0.5"
    assert normalize_answer("-3.000") == "-3"
    assert normalize_answer("1,234,567") == "1234567"
    assert normalize_answer("\\text{ yes }.") == "yes"
    assert normalize_answer("\\left( 1, 2 \\right)") == "(1,2)"


def test_score_problems_hand_made():
    extracted = [["3", "3", "4", None], ["1", "2", "2", "1"], [None] * 4]
    scores = [[1, 1, 0, 0], [1, 0, 0, 1], [0] * 4]
    got = score_problems(extracted, scores, k=2)
    assert got["pass@1"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert got["pass@k"] == pytest.approx((5 / 6 + 5 / 6 + 0) / 3)
    # maj over the first 2 samples: ("3","3") -> right; ("1","2") tie -> "1" -> right; no answers -> wrong
    assert got["maj@k"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------- config and errors


def _one_line_error(capsys, argv) -> str:
    assert eval_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rlvr eval: ") and "\n" not in err, err
    return err


def test_config_errors_are_one_line(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen2"}')
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n")
    ok = [f"model={model}", f"data.path={data}"]
    assert "'bogus'" in _one_line_error(capsys, [*ok, "bogus=1"])
    assert "'data.bogus'" in _one_line_error(capsys, [*ok, "data.bogus=1"])
    assert "for k:" in _one_line_error(capsys, [*ok, "k=four"])
    assert "for temperature:" in _one_line_error(capsys, [*ok, "temperature=hot"])
    assert "model=PATH is required" in _one_line_error(capsys, [f"data.path={data}"])
    assert "data.path=FILE is required" in _one_line_error(capsys, [f"model={model}"])
    assert "same setting" in _one_line_error(capsys, [*ok, f"data.eval_path={data}"])
    assert "model not found" in _one_line_error(capsys, [f"model={tmp_path / 'nope'}", f"data.path={data}"])
    assert "problem file not found" in _one_line_error(capsys, [f"model={model}", f"data.path={tmp_path / 'x.jsonl'}"])
    assert "n (samples per problem) must be >= k" in _one_line_error(capsys, [*ok, "k=4", "n=2"])
    assert "data.template" in _one_line_error(capsys, [*ok, "data.template=fancy"])
    assert "key=value" in _one_line_error(capsys, [*ok, "k"])

    cfg = parse_overrides([*ok, "k=8", "temperature=1", "data.limit=3", "verifier.timeout_s=2"])
    assert (cfg.k, cfg.n, cfg.temperature, cfg.limit, cfg.verifier.timeout_s) == (8, 8, 1.0, 3, 2.0)
    assert "limit (data.limit) must be >= 1" in _one_line_error(capsys, [*ok, "data.limit=0"])
    with pytest.raises(EvalError):
        parse_overrides([*ok, "seed=x"])


def test_eval_config_nests_the_train_blocks(tmp_path):
    from rlvr.config import DataConfig, VerifierConfig
    from rlvr.evaluation import build_config

    cfg = parse_overrides(["model=m", "data.path=p.jsonl", "data.split=validation", "data.template=boxed_instruction"])
    assert isinstance(cfg.data, DataConfig) and isinstance(cfg.verifier, VerifierConfig)
    assert (cfg.data.eval_path, cfg.data.eval_split, cfg.data.template, cfg.limit) == (
        "p.jsonl", "validation", "boxed_instruction", None)
    same = parse_overrides(["model=m", "data.eval_path=p.jsonl", "data.eval_split=validation",
                            "data.template=boxed_instruction"])
    assert same == cfg
    assert parse_overrides(["model=m", "data.path=p.jsonl"]).data.eval_split == "test"  # as before
    # evaluate_model's dict form takes the short keys too
    from_dict = build_config(lambda: {"model": "m", "data": {"path": "p.jsonl", "limit": 2}})
    assert (from_dict.data.eval_path, from_dict.limit) == ("p.jsonl", 2)


# ------------------------------------------------------------------------------ the shared evaluator


class _FakeRollouts:
    """The rollout group's interface; samples come back in a scrambled order (the evaluator sorts)."""

    def __init__(self):
        self.calls = []

    def generate(self, prompt_ids, params):
        from rlvr.rollout.samples import Sample

        self.calls.append(dict(params))
        n = 1 if params["temperature"] == 0 else params["n"]
        out = []
        for i in range(len(prompt_ids)):
            for j in range(n):
                guess = (i * 7 + j * 3 + (params["seed"] or 0)) % 4
                out.append(Sample(i, [guess], [-0.5], f"\\boxed{{{guess}}}", "stop"))
        return out[::-1], 0.25


class _FakeVerifier:
    def verify(self, responses, golds):
        from rlvr.verifier import VerifyResult

        return [VerifyResult(float(r == f"\\boxed{{{g}}}"), "correct" if r == f"\\boxed{{{g}}}" else "wrong", r)
                for r, g in zip(responses, golds)]


def _old_evaluate(rollouts, verifier, problems, prompt_ids, rollout_cfg: dict, seed=0) -> dict:
    """`rlvr/orchestrator/steps.py: evaluate` as it was before the shared evaluator (frozen copy)."""
    out = {}
    for name, temperature, n in (("accuracy", rollout_cfg["eval_temperature"], rollout_cfg["eval_n"]),
                                 ("greedy_accuracy", 0.0, 1)):
        if name == "greedy_accuracy" and rollout_cfg["eval_temperature"] == 0:
            out[name] = out["accuracy"]
            break
        params = dict(n=n, temperature=temperature, max_tokens=rollout_cfg["max_tokens"], top_p=1.0,
                      stop=list(rollout_cfg["stop"]), seed=seed if temperature > 0 else None)
        samples, _ = rollouts.generate(prompt_ids, params)
        samples.sort(key=lambda s: s.prompt_index)
        results = verifier.verify([s.text for s in samples], [problems[s.prompt_index]["answer"] for s in samples])
        out[name] = sum(r.reason == "correct" for r in results) / max(1, len(results))
        out.setdefault("examples", [[problems[s.prompt_index]["prompt"], s.text, problems[s.prompt_index]["answer"],
                                     r.reason] for s, r in list(zip(samples, results))[:8]])
    out["n"] = len(problems)
    return out


@pytest.mark.parametrize(("eval_temperature", "eval_n", "seed"), [(1.0, 4, 0), (0.6, 3, 5), (0.0, 4, 0)])
def test_in_training_evaluate_is_the_old_evaluator(eval_temperature, eval_n, seed):
    from dataclasses import asdict

    from rlvr.config import RolloutConfig
    from rlvr.evaluation import evaluate

    rollout_cfg = RolloutConfig(eval_temperature=eval_temperature, eval_n=eval_n, stop=["\n\n"])
    problems = [{"prompt": f"q{i}", "answer": str(i % 4)} for i in range(5)]
    prompt_ids = [[1, i] for i in range(5)]
    new_rollouts, old_rollouts = _FakeRollouts(), _FakeRollouts()
    got = evaluate(new_rollouts, _FakeVerifier(), problems, prompt_ids, rollout_cfg, seed=seed)
    want = _old_evaluate(old_rollouts, _FakeVerifier(), problems, prompt_ids, asdict(rollout_cfg), seed=seed)
    assert got == want
    assert new_rollouts.calls == old_rollouts.calls  # the same sampling settings and seeds, in order
    assert set(got) == {"accuracy", "greedy_accuracy", "examples", "n"}


def test_engine_rollouts_is_the_generate_interface():
    from rlvr.evaluation import EngineRollouts

    class Engine:
        def generate(self, prompts, **params):
            self.seen = (prompts, params)
            return ["s"]

    engine = Engine()
    samples, seconds = EngineRollouts(engine).generate([[1]], {"n": 2, "temperature": 1.0, "seed": 3})
    assert samples == ["s"] and seconds >= 0 and engine.seen == ([[1]], {"n": 2, "temperature": 1.0, "seed": 3})


def test_resolve_model_dir(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text('{"model_type": "qwen2"}')
    assert resolve_model_dir(str(plain)) == str(plain.resolve())
    run = tmp_path / "run"
    for step in (2, 10):
        (run / "checkpoints" / f"step_{step}" / "hf").mkdir(parents=True)
        (run / "checkpoints" / f"step_{step}" / "hf" / "config.json").write_text('{"model_type": "qwen2"}')
    (run / "checkpoints" / ".step_12.tmp" / "hf").mkdir(parents=True)  # an unfinished save is ignored
    step2 = run / "checkpoints" / "step_2"
    assert resolve_model_dir(str(step2)) == str((step2 / "hf").resolve())
    assert resolve_model_dir(str(run)) == str((run / "checkpoints" / "step_10" / "hf").resolve())
    (run / "config.json").write_text('{"output_dir": "run", "algorithm": {}}')  # rlvr's own run config
    assert resolve_model_dir(str(run)) == str((run / "checkpoints" / "step_10" / "hf").resolve())
    assert resolve_model_dir("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"  # a hub name
    with pytest.raises(EvalError, match="no HF model"):
        resolve_model_dir(str(tmp_path))


# -------------------------------------------------------------------------------------- end to end

# A bigram "policy" wired into the tiny model's weights: after the prompt's final newline it writes
# "\boxed{3}" (p=.375), "\boxed{4}" (.225), "\boxed{7}" (.15) or "a" (.25, no answer), then stops.
TRANSITIONS = {"\n": {"\\": 0.75, "a": 0.25}, "\\": {"b": 1}, "b": {"o": 1}, "o": {"x": 1}, "x": {"e": 1},
               "e": {"d": 1}, "d": {"{": 1}, "{": {"3": 0.5, "4": 0.3, "7": 0.2}, "3": {"}": 1},
               "4": {"}": 1}, "7": {"}": 1}}
GOLDS = [3, 4, 7, 9, 3, 4]


def _bigram_tiny_model(out_dir: Path) -> None:
    """`build_tiny_model`, then: attention and MLP outputs zeroed (the residual stream is the current
    token's embedding), one-hot embeddings, an untied lm_head holding log P(next | current)."""
    import torch
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    from rlvr.models.tiny import build_tiny_model

    base = build_tiny_model(out_dir)
    tok = AutoTokenizer.from_pretrained(out_dir)
    config = base.config
    config.tie_word_embeddings = False
    vocab, hidden = config.vocab_size, config.hidden_size
    assert vocab <= hidden
    chars = set(TRANSITIONS) | {c for nxt in TRANSITIONS.values() for c in nxt}
    ids = {c: tok.encode(c, add_special_tokens=False) for c in chars}
    assert all(len(v) == 1 for v in ids.values()), ids
    ids = {c: v[0] for c, v in ids.items()}
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        model.load_state_dict(base.state_dict(), strict=False)
        for name, param in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                param.zero_()
        emb = model.model.embed_tokens.weight
        emb.zero_()
        emb[torch.arange(vocab), torch.arange(vocab)] = 1.0
        model.model.norm.weight.fill_(1 / math.sqrt(hidden))  # RMSNorm of a one-hot row: the one-hot row
        logits = torch.full((vocab, hidden), -30.0)
        logits[tok.eos_token_id, :] = 0.0                       # any other token: stop
        for cur, nxt in TRANSITIONS.items():
            logits[:, ids[cur]] = -30.0
            for char, prob in nxt.items():
                logits[ids[char], ids[cur]] = math.log(prob)
        model.lm_head.weight.copy_(logits)
    model.save_pretrained(out_dir)


@pytest.mark.slow
def test_eval_cli_end_to_end(tmp_path, cache_dir):
    step_dir = tmp_path / "run" / "checkpoints" / "step_3"
    _bigram_tiny_model(step_dir / "hf")        # evaluated through the checkpoint directory
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps({"question": f"Q{i}: what is {g - 1} + 1?",
                                        "answer": f"{g - 1} + 1 = <<{g - 1}+1={g}>>{g}\n#### {g}"}) + "\n"
                            for i, g in enumerate(GOLDS)))
    out = tmp_path / "eval"
    k, n = 4, 8
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "rlvr.cli", "eval", f"model={step_dir}", f"data.path={data}", f"output_dir={out}",
           f"k={k}", f"n={n}", "temperature=1.0", "max_tokens=16", "seed=0", "verifier.workers=1",
           "verifier.timeout_s=10", f"cache_dir={cache_dir}"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert "pass@1=" in proc.stdout

    report = json.loads((out / "eval.json").read_text())
    for key in ("pass@1", "pass@k", "maj@k", "k", "n", "n_problems", "model", "data", "temperature", "seconds"):
        assert key in report, key
    assert (report["k"], report["n"], report["n_problems"]) == (k, n, len(GOLDS))
    assert report["model"] == str((step_dir / "hf").resolve())

    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == n * len(GOLDS)
    by_problem = defaultdict(list)
    for row in rows:
        assert set(row) >= {"problem", "prompt", "response", "gold", "extracted", "reason", "score"}
        by_problem[row["problem"]].append(row)
    assert sorted(by_problem) == list(range(len(GOLDS)))

    pass1, passk, majk = [], [], []
    for i, samples in sorted(by_problem.items()):
        samples.sort(key=lambda r: r["sample"])
        assert len(samples) == n and samples[0]["gold"] == str(GOLDS[i])
        for r in samples:  # the bigram policy only ever writes these four responses
            assert r["response"] in ("a", "\\boxed{3}", "\\boxed{4}", "\\boxed{7}"), r
            assert r["score"] == float(r["response"] == f"\\boxed{{{GOLDS[i]}}}")
        c = sum(r["score"] for r in samples)
        pass1.append(c / n)
        passk.append(float(_brute_pass_at_k(n, int(c), k)))
        votes = [normalize_answer(r["extracted"]) for r in samples[:k]]
        counted = [v for v in votes if v is not None]
        if counted:
            top = max(counted.count(v) for v in counted)
            winner = next(v for v in counted if counted.count(v) == top)
            majk.append(float(samples[votes.index(winner)]["score"]))
        else:
            majk.append(0.0)
    assert report["pass@1"] == pytest.approx(fmean(pass1), abs=1e-12)
    assert report["pass@k"] == pytest.approx(fmean(passk), abs=1e-12)
    assert report["maj@k"] == pytest.approx(fmean(majk), abs=1e-12)
    # the policy makes the numbers informative: some right, not all, and pass@k above pass@1
    assert 0 < report["pass@1"] < report["pass@k"] < 1
    assert pass1[GOLDS.index(9)] == 0.0
    print(f"\ne2e: pass@1={report['pass@1']:.4f} pass@{k}={report['pass@k']:.4f} maj@{k}={report['maj@k']:.4f} "
          f"seconds={report['seconds']:.1f}")

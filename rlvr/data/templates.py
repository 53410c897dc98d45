"""Turn a problem's text into the prompt string the policy sees, and that string into token ids."""

from __future__ import annotations

# The instruction Qwen-style math models were tuned on; keeping it verbatim
# makes their answers land in \boxed{} where the verifier looks.
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

PROMPT_TEMPLATES = ("plain", "boxed_instruction", "chat", "raw")

_MISSING = object()


def format_prompt(
    problem_text: str, template: str = "plain", tokenizer=None, system: str | None = None,
    instruction: str | None = None,
) -> str:
    """Render ``problem_text`` with ``template``.

    - ``plain``: the question then ``"\\n"`` (the tiny default job; its
      characters stay within ``tasks.CHARSET``).
    - ``boxed_instruction``: the question, ``"\\n"``, ``BOXED_INSTRUCTION``, ``"\\n"``.
    - ``chat``: ``tokenizer.apply_chat_template`` over an optional ``system``
      message and a user message (question + instruction), with the
      generation prompt appended, for real instruct models.
    - ``raw``: ``problem_text`` exactly as given, not even stripped (TRL's
      standard-format prompts: "Q 23+58=? A " keeps its trailing space).

    Every template but ``raw`` strips the question first (data files keep the
    text verbatim; see ``rlvr.data.datasets``).

    ``instruction`` replaces ``BOXED_INSTRUCTION`` (e.g. a shorter answer
    format for a small model). ``system`` is only meaningful for ``chat`` and
    ``instruction`` not for ``plain`` or ``raw``; either one passed where it
    means nothing raises ``ValueError`` rather than being silently dropped.
    """
    if template not in PROMPT_TEMPLATES:
        raise ValueError(
            f"unknown prompt template {template!r}; valid templates: {', '.join(PROMPT_TEMPLATES)}"
        )
    if template != "chat" and system is not None:
        raise ValueError(f"system prompt is only supported by the 'chat' template, not {template!r}")
    if template in ("plain", "raw"):
        if instruction is not None:
            raise ValueError(f"an instruction needs the 'boxed_instruction' or 'chat' template, not {template!r}")
        return problem_text if template == "raw" else problem_text.strip() + "\n"
    problem_text = problem_text.strip()
    instruction = BOXED_INSTRUCTION if instruction is None else instruction
    if template == "boxed_instruction":
        return f"{problem_text}\n{instruction}\n"
    return _chat_prompt(problem_text, tokenizer, system, instruction)


def _chat_prompt(problem_text: str, tokenizer, system: str | None, instruction: str) -> str:
    if tokenizer is None:
        raise ValueError("the 'chat' template needs a tokenizer (with a chat template)")
    # transformers raises a vague error deep inside when the template is
    # missing; say which setting to change instead.
    if getattr(tokenizer, "chat_template", _MISSING) is None:
        raise ValueError(
            "the 'chat' template needs a tokenizer with a chat template; this tokenizer has none "
            "(use template='boxed_instruction' for base models)"
        )
    messages = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": f"{problem_text}\n{instruction}"})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def prompt_texts(tokenizer, problems: list[dict], data_cfg) -> list[str]:
    """Each problem's prompt as the model is sent it, with the template settings of ``data_cfg`` (a
    ``DataConfig``: ``template``, ``system_prompt``, ``instruction``); reward functions see these."""
    return [format_prompt(p["prompt"], data_cfg.template, tokenizer=tokenizer, system=data_cfg.system_prompt,
                          instruction=data_cfg.instruction) for p in problems]


def tokenize_prompts(tokenizer, problems: list[dict], data_cfg) -> list[list[int]]:
    """Each problem's templated prompt (``prompt_texts``) as token ids. A chat template already writes
    the model's special tokens, so the tokenizer adds none of its own there; ``plain``, ``boxed_instruction``
    and ``raw`` text get what the tokenizer adds to any plain text (``add_special_tokens=True``: a BOS for
    Llama-style tokenizers, nothing for Qwen's or the tiny model's)."""
    chat = data_cfg.template == "chat"
    return [tokenizer(t, add_special_tokens=not chat)["input_ids"] for t in prompt_texts(tokenizer, problems, data_cfg)]

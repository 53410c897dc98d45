import pytest

from rlvr.data import BOXED_INSTRUCTION, PROMPT_TEMPLATES, format_prompt

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_tokenizer(chat_template: str | None = CHAT_TEMPLATE):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    tokenizer.chat_template = chat_template
    return tokenizer


def test_plain():
    assert format_prompt("Ann has 7 apples.") == "Ann has 7 apples.\n"
    assert format_prompt("Q?", template="plain") == "Q?\n"


def test_raw_is_the_text_exactly():
    assert format_prompt("Q 23+58=? A ", template="raw") == "Q 23+58=? A "  # no newline, nothing stripped
    assert format_prompt(" x\n", template="raw") == " x\n"
    assert "raw" in PROMPT_TEMPLATES
    with pytest.raises(ValueError, match="instruction"):
        format_prompt("Q?", template="raw", instruction="Answer: N")
    with pytest.raises(ValueError, match="system"):
        format_prompt("Q?", template="raw", system="Be brief.")


def test_other_templates_strip_the_verbatim_text():
    """Data files keep prompts verbatim; plain/boxed_instruction/chat render them stripped, as before."""
    assert format_prompt("  Q? \n") == "Q?\n"
    assert format_prompt(" Q?", template="boxed_instruction") == f"Q?\n{BOXED_INSTRUCTION}\n"


def test_boxed_instruction():
    expected = "Q?\nPlease reason step by step, and put your final answer within \\boxed{}.\n"
    assert format_prompt("Q?", template="boxed_instruction") == expected
    assert BOXED_INSTRUCTION in expected


def test_instruction_replaces_the_boxed_one():
    assert format_prompt("Q?", template="boxed_instruction", instruction="Answer: N") == "Q?\nAnswer: N\n"
    chat = format_prompt("Q?", template="chat", tokenizer=tiny_tokenizer(), instruction="Answer: N")
    assert chat == "<|user|>Q?\nAnswer: N\n<|assistant|>"
    with pytest.raises(ValueError, match="instruction"):
        format_prompt("Q?", template="plain", instruction="Answer: N")


def test_chat_with_real_tokenizer():
    prompt = format_prompt("What is 1+1?", template="chat", tokenizer=tiny_tokenizer())
    assert prompt == f"<|user|>What is 1+1?\n{BOXED_INSTRUCTION}\n<|assistant|>"


def test_chat_with_system():
    prompt = format_prompt("Q?", template="chat", tokenizer=tiny_tokenizer(), system="Be brief.")
    assert prompt.startswith("<|system|>Be brief.\n<|user|>Q?\n")
    assert prompt.endswith("<|assistant|>")


def test_chat_passes_generation_prompt_flag():
    seen = {}

    class Recorder:
        chat_template = "x"

        def apply_chat_template(self, messages, **kwargs):
            seen.update(kwargs, messages=messages)
            return "rendered"

    assert format_prompt("Q?", template="chat", tokenizer=Recorder()) == "rendered"
    assert seen["tokenize"] is False and seen["add_generation_prompt"] is True
    assert seen["messages"] == [{"role": "user", "content": f"Q?\n{BOXED_INSTRUCTION}"}]


def test_chat_needs_tokenizer_with_template():
    with pytest.raises(ValueError, match="needs a tokenizer"):
        format_prompt("Q?", template="chat")
    with pytest.raises(ValueError, match="chat template"):
        format_prompt("Q?", template="chat", tokenizer=tiny_tokenizer(chat_template=None))


def test_unknown_template_lists_valid_ones():
    with pytest.raises(ValueError) as info:
        format_prompt("Q?", template="fancy")
    for name in PROMPT_TEMPLATES:
        assert name in str(info.value)


def test_system_only_for_chat():
    with pytest.raises(ValueError, match="system"):
        format_prompt("Q?", template="plain", system="Be brief.")


class _RecordingTokenizer:
    """Records what it is asked to encode; a chat template that shows the system prompt."""

    chat_template = "set"

    def __init__(self):
        self.calls = []

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return "|".join(m["content"] for m in messages)

    def __call__(self, text, add_special_tokens):
        self.calls.append((text, add_special_tokens))
        return {"input_ids": [len(text), int(add_special_tokens)]}


def test_tokenize_prompts_reads_the_typed_data_config():
    from omegaconf import OmegaConf

    from rlvr.config import DataConfig
    from rlvr.data import tokenize_prompts

    problems = [{"prompt": "1+1?"}, {"prompt": "2+3?"}]
    tok = _RecordingTokenizer()
    assert tokenize_prompts(tok, problems, DataConfig()) == [[5, 1], [5, 1]]
    assert tok.calls == [("1+1?\n", True), ("2+3?\n", True)]  # plain: the tokenizer's own special tokens
    tok.calls.clear()
    chat = DataConfig(template="chat", system_prompt="Be brief.", instruction="Answer: N")
    for cfg in (chat, OmegaConf.structured(chat)):  # the dataclass or its OmegaConf node
        tokenize_prompts(tok, problems[:1], cfg)
    assert tok.calls == [("Be brief.|1+1?\nAnswer: N", False)] * 2  # the chat template wrote them already


def test_raw_prompts_are_sent_verbatim_with_the_plain_special_tokens():
    from rlvr.config import DataConfig
    from rlvr.data import prompt_texts, tokenize_prompts

    problems = [{"prompt": "Q 1+1=? A "}]
    tok = _RecordingTokenizer()
    cfg = DataConfig(template="raw")
    assert prompt_texts(tok, problems, cfg) == ["Q 1+1=? A "]
    tokenize_prompts(tok, problems, cfg)
    assert tok.calls == [("Q 1+1=? A ", True)]  # as plain text: what the tokenizer adds to any text

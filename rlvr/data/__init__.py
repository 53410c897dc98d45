"""Problems, prompts and batches for RLVR training.

Self-contained: imports nothing from other ``rlvr`` subpackages, so the data
path can be tested and reused without the training stack. Config objects
(``DataConfig``) are read by attribute, never imported.
"""

from rlvr.data.datasets import FORMATS, ProblemSet, load_problem_set, load_problems
from rlvr.data.problem_sets import load_problem_sets, load_train_heldout
from rlvr.data.sampler import PromptSampler
from rlvr.data.tasks import CHARSET, generate_problems, key_split, solution_text
from rlvr.data.templates import BOXED_INSTRUCTION, PROMPT_TEMPLATES, format_prompt, prompt_texts, tokenize_prompts

__all__ = [
    "BOXED_INSTRUCTION",
    "CHARSET",
    "FORMATS",
    "PROMPT_TEMPLATES",
    "ProblemSet",
    "PromptSampler",
    "format_prompt",
    "generate_problems",
    "key_split",
    "load_problem_set",
    "load_problems",
    "load_problem_sets",
    "load_train_heldout",
    "prompt_texts",
    "solution_text",
    "tokenize_prompts",
]

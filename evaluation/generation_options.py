"""Generation settings: the BigCode evaluation harness's HumanEval defaults, as one frozen dataclass and CLI flags.

The harness (``bigcode_eval/tasks/humaneval.py``) generates from the prompt with its surrounding whitespace
stripped, samples with temperature 0.2 and top-p 0.95, and cuts each generation at the first of
:data:`HUMANEVAL_STOP_SEQUENCES` (and at end of text). ``--n 1 --temperature 0`` is greedy.

The length budget has two modes. The default, ``harness``, is the harness's ``max_length_generation=512``: the
prompt and the generation together hold at most 512 tokens (a prompt of 512 tokens or more keeps its last 512,
as the harness's tokenizer, made with ``truncation_side="left"``, cuts it, and gets no new token). ``--max-new-tokens N`` instead allows N new
tokens whatever the prompt's length (more lenient; not comparable with published harness numbers).
``settings.json`` records which mode ran (:func:`length_budget`). Library module.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

HUMANEVAL_STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```", "<file_sep>")
HARNESS_MAX_LENGTH = 512  # the harness's --max_length_generation default: prompt + generation, in tokens
STOP_RULES = ("", "braces", "unindented")  # "unindented": Python HumanEvalPack, a line that is not indented


@dataclass(frozen=True)
class GenerationSettings:
    n: int = 20  # samples per prompt
    temperature: float = 0.2  # 0 = greedy
    top_p: float = 0.95
    max_new_tokens: int | None = None  # None: the harness's budget (max_length_generation, prompt included)
    max_length_generation: int = HARNESS_MAX_LENGTH
    batch_size: int = 8  # sequences per forward pass
    seed: int = 1234
    device: str = "auto"  # auto = cuda when available (bf16), else cpu (fp32)
    stop_sequences: tuple[str, ...] = HUMANEVAL_STOP_SEQUENCES
    stop_rule: str = ""  # the harness's check_fn: "braces" (Go/Rust: the function's brace closed), "unindented"

    def __post_init__(self) -> None:
        if self.n < 1 or self.batch_size < 1 or self.max_length_generation < 1 or (
                self.max_new_tokens is not None and self.max_new_tokens < 1):
            raise ValueError("--n, --max-new-tokens, --max-length-generation and --batch-size must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("--temperature must be >= 0 (0 = greedy) and --top-p in (0, 1]")
        if self.stop_rule not in STOP_RULES:
            raise ValueError(f"stop_rule {self.stop_rule!r}: one of {STOP_RULES}")
        if self.temperature == 0 and self.n > 1:
            raise ValueError("greedy decoding (--temperature 0) gives one sample per prompt: use --n 1")

    @property
    def harness_budget(self) -> bool:
        return self.max_new_tokens is None


def length_budget(settings: GenerationSettings) -> dict:
    """What ``settings.json`` says about the length budget (which mode ran, and whether it matches the harness)."""
    if settings.harness_budget:
        return {"mode": "harness", "max_length_generation": settings.max_length_generation, "prompt_included": True,
                "as_bigcode_harness": settings.max_length_generation == HARNESS_MAX_LENGTH}
    return {"mode": "max_new_tokens", "max_new_tokens": settings.max_new_tokens, "prompt_included": False,
            "as_bigcode_harness": False}


def add_generation_options(parser: argparse.ArgumentParser, max_length: int = HARNESS_MAX_LENGTH) -> None:
    d = GenerationSettings()
    parser.add_argument("--n", type=int, default=d.n, help="samples per problem")
    parser.add_argument("--temperature", type=float, default=d.temperature, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=d.top_p)
    parser.add_argument("--max-length-generation", type=int, default=max_length,
                        help=f"prompt + generation in tokens, the harness's budget (default {max_length})")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="instead: this many new tokens whatever the prompt's length (not the harness's budget)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="sequences per forward pass")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems (a quick look; labelled"
                        " as a subset in every output)")


def settings_from_args(args: argparse.Namespace, stop_sequences: tuple[str, ...] = HUMANEVAL_STOP_SEQUENCES,
                       stop_rule: str = "") -> GenerationSettings:
    return GenerationSettings(n=args.n, temperature=args.temperature, top_p=args.top_p,
                              max_new_tokens=args.max_new_tokens, max_length_generation=args.max_length_generation,
                              batch_size=args.batch_size, seed=args.seed, device=args.device,
                              stop_sequences=stop_sequences, stop_rule=stop_rule)

"""Generation settings: the BigCode evaluation harness's HumanEval defaults, as one frozen dataclass and CLI flags.

The harness (``bigcode_eval/tasks/humaneval.py``) generates from the prompt with its surrounding whitespace
stripped, samples with temperature 0.2 and top-p 0.95, and cuts each generation at the first of
:data:`HUMANEVAL_STOP_SEQUENCES` (and at end of text). ``--n 1 --temperature 0`` is greedy. Library module.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

HUMANEVAL_STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```", "<file_sep>")


@dataclass(frozen=True)
class GenerationSettings:
    n: int = 20  # samples per prompt
    temperature: float = 0.2  # 0 = greedy
    top_p: float = 0.95
    max_new_tokens: int = 512
    batch_size: int = 8  # sequences per forward pass
    seed: int = 1234
    device: str = "auto"  # auto = cuda when available (bf16), else cpu (fp32)
    stop_sequences: tuple[str, ...] = HUMANEVAL_STOP_SEQUENCES

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("--n, --max-new-tokens and --batch-size must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("--temperature must be >= 0 (0 = greedy) and --top-p in (0, 1]")
        if self.temperature == 0 and self.n > 1:
            raise ValueError("greedy decoding (--temperature 0) gives one sample per prompt: use --n 1")


def add_generation_options(parser: argparse.ArgumentParser) -> None:
    d = GenerationSettings()
    parser.add_argument("--n", type=int, default=d.n, help="samples per problem")
    parser.add_argument("--temperature", type=float, default=d.temperature, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=d.top_p)
    parser.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="sequences per forward pass")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems (a quick look)")


def settings_from_args(args: argparse.Namespace) -> GenerationSettings:
    return GenerationSettings(n=args.n, temperature=args.temperature, top_p=args.top_p,
                              max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
                              device=args.device)

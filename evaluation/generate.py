"""Batched sampling with the KV cache for any GPT-BigCode causal LM, cut at stop sequences (the harness's way).

    model, tokenizer, device = load_hf_model("hf/finetuned", "auto")    # bf16 on GPU, fp32 on CPU
    outputs = generate_texts(model, tokenizer, ["def add(a, b):"], GenerationSettings(n=2), progress=False)
    outputs[0][1].text        # the second sample for the first prompt, cut before the first stop sequence

Prompts are left-padded into batches of ``batch_size`` sequences (similar lengths together), run once through
the model, then extended one token per step from the cache; position ids follow the attention mask, so a
padded row computes exactly what it would alone (greedy batched output equals ``model.generate`` one prompt
at a time; tested). A row stops at end of text, at a stop sequence (or once the function is complete by
the harness's HumanEvalPack rule: Go/Rust, its opening brace closed; Python, a line that is not indented) or
at its length budget: with the harness's budget, ``max_length_generation`` tokens for prompt and generation
together (a longer prompt is cut to its last tokens and gets none, as the harness does), else
``max_new_tokens`` (a prompt longer than the model's context then keeps its last tokens). Cut prompts are
counted. Ids past the tokenizer's vocabulary (Megatron
pads the embedding) are never sampled. Library module.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from evaluation.generation_options import GenerationSettings

STOP_WINDOW_TOKENS = 24  # a stop sequence that just appeared lies within the last few tokens


@dataclass(frozen=True)
class Generation:
    text: str  # the new text, cut before the first stop sequence (and without the end-of-text token)
    new_tokens: int  # tokens generated, stop sequence included
    stopped: str  # "eos", "stop" or "length" (the length budget)
    prompt_truncated: bool = False
    token_ids: tuple[int, ...] = ()  # every new token, end of text included (the harness decodes them itself)


def resolve_device(name: str) -> tuple[torch.device, torch.dtype]:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():  # else torch fails deep inside .to(device)
        raise ValueError(f"--device {name}: no CUDA device is visible on this machine; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device, (torch.bfloat16 if device.type == "cuda" else torch.float32)


def load_hf_model(path, device_name: str = "auto"):
    """A Hugging Face causal LM and its tokenizer from one folder, in eval mode, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from safetensors import SafetensorError

    if not (Path(path) / "config.json").is_file():  # else transformers talks about hub repo ids
        state = "is not a folder" if not Path(path).is_dir() else "has no config.json"
        raise FileNotFoundError(f"{path}: {state}; give a Hugging Face model folder (what"
                                " conversion.megatron_to_hf writes)")
    device, dtype = resolve_device(device_name)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, attn_implementation="sdpa")
    except SafetensorError as exc:  # a cut or damaged weights file: the user's to fix, not a traceback
        raise ValueError(f"{path}: its weights cannot be read ({exc}); the file is damaged or incomplete (a cut"
                         " copy or download?): copy or convert the model again") from exc
    return model.to(device).eval(), tokenizer, device


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` before the earliest stop sequence, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


def pick_tokens(logits: torch.Tensor, settings: GenerationSettings, vocab_size: int,
                generator: torch.Generator) -> torch.Tensor:
    """The next token of every row: argmax when temperature is 0, else nucleus (top-p) sampling."""
    logits = logits.float()
    logits[:, vocab_size:] = float("-inf")
    if settings.temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / settings.temperature, dim=-1)
    if settings.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above each one
        sorted_probs[before >= settings.top_p] = 0.0  # keep the smallest prefix whose mass reaches top_p
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def row_budgets(prompt_ids: Sequence[Sequence[int]], settings: GenerationSettings,
                context: int) -> tuple[list[list[int]], list[int], list[bool]]:
    """The rows as the model sees them, how many new tokens each may take, and which prompts were cut."""
    if settings.harness_budget:  # prompt + generation <= max_length; a longer prompt (the harness's tokenizer cuts
        total = min(settings.max_length_generation, context)  # on the left) fills it and gets no new token
        rows = [list(ids[-total:]) for ids in prompt_ids]
        return rows, [total - len(r) for r in rows], [len(ids) > total for ids in prompt_ids]
    keep = max(1, context - settings.max_new_tokens)
    rows = [list(ids[-keep:]) for ids in prompt_ids]
    return rows, [min(settings.max_new_tokens, context - len(r)) for r in rows], [len(ids) > keep for ids in prompt_ids]


def function_complete(text: str, rule: str) -> bool:
    """The harness's ``check_fn``: Go/Rust, the brace the prompt left open is closed; Python, a line is not indented."""
    if rule == "braces":
        return text.count("{") + 1 <= text.count("}")
    if rule == "unindented":
        return any(line.strip() and line[0] not in " \t" for line in text.split("\n"))
    return False


@torch.no_grad()
def generate_batch(model, prompt_ids: Sequence[Sequence[int]], settings: GenerationSettings, eos_id: int | None,
                   vocab_size: int, decode, generator: torch.Generator) -> list[Generation]:
    device = next(model.parameters()).device
    rows, budgets, truncated = row_budgets(prompt_ids, settings, model.config.max_position_embeddings)
    width = max(len(r) for r in rows)
    pad = eos_id if eos_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    new: list[list[int]] = [[] for _ in rows]
    stopped = ["length"] * len(rows)
    done = [b <= 0 for b in budgets]
    texts = [""] * len(rows)  # the text of the new tokens, kept only for a stop rule
    if not all(done):
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True)
    next_position = positions[:, -1] + 1
    for step in range(max(budgets)):
        if all(done):
            break
        tokens = pick_tokens(out.logits[:, -1, :], settings, vocab_size, generator)
        for i, token in enumerate(tokens.tolist()):
            if done[i]:
                continue
            new[i].append(token)
            if settings.stop_rule:
                texts[i] += decode([token])
            if token == eos_id:
                stopped[i], done[i] = "eos", True
            elif (settings.stop_sequences and cut_at_stop(decode(new[i][-STOP_WINDOW_TOKENS:]),
                                                           settings.stop_sequences)[1]) or (
                    settings.stop_rule and function_complete(texts[i], settings.stop_rule)):
                stopped[i], done[i] = "stop", True
            elif len(new[i]) >= budgets[i]:
                done[i] = True
        if all(done):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_position[:, None],
                    past_key_values=out.past_key_values, use_cache=True)
        # a finished row is still fed (its output ignored): keep its position inside the table
        next_position = (next_position + 1).clamp(max=model.config.max_position_embeddings - 1)
    results = []
    for ids, why, cut in zip(new, stopped, truncated):
        text = decode(ids[:-1] if why == "eos" else ids)
        results.append(Generation(cut_at_stop(text, settings.stop_sequences)[0], len(ids), why, cut, tuple(ids)))
    return results


def harness_text(tokenizer, prompt: str, prompt_ids: Sequence[int], generation: Generation,
                 stops: Sequence[str]) -> str:
    """The generation as the harness reads it: prompt and new ids decoded together (special tokens kept, no
    clean-up, a leading BOS dropped), the prompt's length in characters cut off, then cut at the first stop."""
    ids = [*prompt_ids, *generation.token_ids]
    if ids and ids[0] == tokenizer.bos_token_id:
        ids = ids[1:]
    text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return cut_at_stop(text[len(prompt):], stops)[0]


def encode_prompts(tokenizer, prompts: Sequence[str], special_tokens: bool = False) -> list[list[int]]:
    """Token ids of each prompt; ``special_tokens`` as the harness's tokenizer call (a BOS for Llama-style models)."""
    return [tokenizer(p, add_special_tokens=special_tokens)["input_ids"] for p in prompts]


def generate_texts(model, tokenizer, prompts: Sequence[str], settings: GenerationSettings,
                   progress: bool = True) -> list[list[Generation]]:
    """``settings.n`` generations for every prompt, in prompt order."""
    encoded = encode_prompts(tokenizer, prompts)
    return generate_from_ids(model, tokenizer, encoded, settings, progress)


def generate_from_ids(model, tokenizer, encoded: Sequence[Sequence[int]], settings: GenerationSettings,
                      progress: bool = True) -> list[list[Generation]]:
    """As :func:`generate_texts` for prompts already tokenized (FIM prompts are built from token ids)."""
    items = sorted(((len(ids), p, s) for p, ids in enumerate(encoded) for s in range(settings.n)),
                   key=lambda item: item[0])
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    vocab_size = len(tokenizer)

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    results: list[list[Generation | None]] = [[None] * settings.n for _ in encoded]
    with tqdm(total=len(items), desc="generating", unit="sample", disable=not progress, mininterval=1.0) as bar:
        for start in range(0, len(items), settings.batch_size):
            batch = items[start:start + settings.batch_size]
            outputs = generate_batch(model, [encoded[p] for _, p, _ in batch], settings, tokenizer.eos_token_id,
                                     vocab_size, decode, generator)
            for (_, p, s), output in zip(batch, outputs):
                results[p][s] = output
            bar.update(len(batch))
    return results  # type: ignore[return-value]

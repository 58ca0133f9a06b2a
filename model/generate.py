"""Sampling from a Llama with a KV cache: the prompt runs once, then one position per new token."""
from __future__ import annotations

import torch

from crawl2model.model.llama import KVCache, Llama


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Logits (..., vocab) with all but the `top_k` largest, and all outside the smallest set whose
    probability reaches `top_p`, set to -inf (the most likely token always stays)."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        ordered, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = ordered.softmax(-1).cumsum(-1)
        drop = cumulative - ordered.softmax(-1) >= top_p  # the mass before a token already reaches top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def generate(model: Llama, prompt: list[int], max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
             seed: int | None = None) -> list[int]:
    """The tokens after `prompt`: greedy at temperature 0, else sampled (seeded when `seed` is
    given); stops after `eos_id` or at the model's max_seq_len. The model runs in eval mode (no
    dropout), and is left in the mode it came in."""
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    training = model.training
    model.eval()
    try:
        return _generate(model, prompt, max_new_tokens, temperature, top_k, top_p, eos_id, seed)
    finally:
        model.train(training)


def _generate(model: Llama, prompt: list[int], max_new_tokens: int, temperature: float, top_k: int | None,
              top_p: float | None, eos_id: int | None, seed: int | None) -> list[int]:
    device = next(model.parameters()).device
    total = min(len(prompt) + max_new_tokens, model.config.max_seq_len)
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    cache = KVCache(model.config, 1, total, device, next(model.parameters()).dtype)
    tokens = torch.tensor([prompt], device=device)
    logits, _ = model(tokens, cache=cache, start=0)
    out, position = [], len(prompt)
    while position < total:
        step = logits[0, -1].float()
        if temperature == 0:
            token = int(step.argmax())
        else:
            probabilities = filter_logits(step / temperature, top_k, top_p).softmax(-1)
            token = int(torch.multinomial(probabilities, 1, generator=generator))
        out.append(token)
        if token == eos_id or position + 1 >= total:
            break
        logits, _ = model(torch.tensor([[token]], device=device), cache=cache, start=position)
        position += 1
    return out

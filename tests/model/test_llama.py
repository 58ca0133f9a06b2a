"""The decoder against the properties that define it: causality, grouped-query attention, rotary
positions, cached generation, and Hugging Face's own Llama on the exported weights."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from crawl2model.model.generate import filter_logits, generate
from crawl2model.model.hf import export_hf
from crawl2model.model.llama import Llama, LlamaConfig, apply_rope, rope_tables

TINY = dict(vocab_size=97, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64)


def tiny(**options) -> Llama:
    torch.manual_seed(0)
    return Llama(LlamaConfig(**{**TINY, **options})).eval()


def test_a_token_never_sees_the_tokens_after_it():
    model = tiny()
    tokens = torch.randint(0, 97, (2, 20))
    changed = tokens.clone()
    changed[:, 12:] = torch.randint(0, 97, (2, 8))
    with torch.no_grad():
        before, _ = model(tokens)
        after, _ = model(changed)
    assert torch.equal(before[:, :12], after[:, :12]) and not torch.allclose(before[:, 12:], after[:, 12:])


def test_grouped_query_attention_equals_attention_over_repeated_keys_and_values():
    model = tiny()
    attention = model.layers[0].attention
    x = torch.randn(2, 10, 32)
    cos, sin = rope_tables(8, torch.arange(10), 10000.0)
    q = apply_rope(attention.wq(x).view(2, 10, 4, 8).transpose(1, 2), cos, sin)
    k = apply_rope(attention.wk(x).view(2, 10, 2, 8).transpose(1, 2), cos, sin)
    v = attention.wv(x).view(2, 10, 2, 8).transpose(1, 2)
    repeated = F.scaled_dot_product_attention(q, k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1),
                                              is_causal=True)
    expected = attention.wo(repeated.transpose(1, 2).reshape(2, 10, 32))
    with torch.no_grad():
        assert torch.allclose(attention(x, cos, sin), expected, atol=1e-6)


def test_rope_is_the_rotation_of_the_reference_formula():
    dim, theta = 8, 10000.0
    x = torch.randn(1, 1, 1, dim)
    for position in (0, 1, 7, 50):
        cos, sin = rope_tables(dim, torch.tensor([position]), theta)
        got = apply_rope(x, cos, sin)[0, 0, 0]
        want = x[0, 0, 0].clone()
        for i in range(dim // 2):  # the pair (i, i + dim/2) turns by position * theta^(-2i/dim)
            angle = position * theta ** (-2 * i / dim)
            a, b = x[0, 0, 0, i], x[0, 0, 0, i + dim // 2]
            want[i], want[i + dim // 2] = a * math.cos(angle) - b * math.sin(angle), a * math.sin(angle) + b * math.cos(angle)
        assert torch.allclose(got, want, atol=1e-5), position
    q, k = torch.randn(1, 1, 1, dim), torch.randn(1, 1, 1, dim)  # attention sees only the distance
    def score(m, n):
        (cm, sm), (cn, sn) = rope_tables(dim, torch.tensor([m]), theta), rope_tables(dim, torch.tensor([n]), theta)
        return (apply_rope(q, cm, sm) * apply_rope(k, cn, sn)).sum()
    assert torch.allclose(score(5, 2), score(13, 10), atol=1e-5)


def test_cached_generation_equals_recomputing_everything():
    model = tiny()
    prompt = [5, 17, 42, 8]
    cached = generate(model, prompt, 20, temperature=0)
    tokens = list(prompt)
    with torch.no_grad():
        for _ in range(20):
            logits, _ = model(torch.tensor([tokens]))
            tokens.append(int(logits[0, -1].argmax()))
    assert cached == tokens[len(prompt):]
    sampled = [generate(model, prompt, 15, temperature=1.0, top_k=20, top_p=0.9, seed=s) for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] != sampled[2]


def test_top_k_and_top_p_keep_the_most_likely_tokens():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [True, True, False, False]
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [True, True, False, False]
    assert torch.isfinite(filter_logits(logits, top_p=0.5)).tolist() == [True, False, False, False]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).tolist() == [True, False, False, False]


def test_parameter_and_flop_counts():
    model = tiny(tie_embeddings=True)
    c = model.config
    per_layer = 2 * c.dim + c.dim * c.dim * 2 + 2 * c.dim * c.n_kv_heads * c.head_dim + 3 * c.dim * c.hidden_dim
    assert model.num_params() == c.vocab_size * c.dim + c.n_layers * per_layer + c.dim
    assert model.flops_per_token(64) == 6 * model.num_params() + 12 * c.n_layers * c.dim * 64


@pytest.mark.parametrize("options", [{}, {"tie_embeddings": True}, {"n_kv_heads": 4}])
def test_hugging_face_loads_the_export_and_gives_the_same_logits(options, tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny(**options)
    export_hf(model, tmp_path / "hf")
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", torch_dtype=torch.float32).eval()
    tokens = torch.randint(0, 97, (2, 30))
    with torch.no_grad():
        ours, _ = model(tokens)
        assert torch.allclose(ours, theirs(tokens).logits, atol=1e-4)

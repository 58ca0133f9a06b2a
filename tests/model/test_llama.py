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
    attention = model.layers["0"].attention
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


def test_dropout_zero_draws_no_random_numbers_and_changes_nothing():
    model = tiny()  # dropout 0.0, the default
    tokens = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        evaluated, _ = model(tokens)
        model.train()
        state = torch.get_rng_state()
        trained, _ = model(tokens)
        assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(evaluated, trained)


def test_dropout_acts_in_training_only_on_attention_and_on_both_outputs(monkeypatch):
    plain, dropped = tiny(), tiny(dropout=0.25)  # the same seed: the same weights
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), dropped.state_dict().values()))
    tokens = torch.randint(0, 97, (2, 20))
    kernel, rates = F.scaled_dot_product_attention, []

    def spy(*args, **kwargs):
        rates.append(kwargs.get("dropout_p", 0.0))
        return kernel(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    outputs = {}
    for i, block in enumerate(dropped.layers.values()):
        for name in ("attention", "feed_forward"):
            getattr(block, name).register_forward_hook(lambda m, a, out, key=(i, name): outputs.__setitem__(key, out))
    with torch.no_grad():
        assert torch.equal(plain(tokens)[0], dropped(tokens)[0])  # eval mode: no dropout
        assert rates == [0.0] * 4 and all(not (out == 0).any() for out in outputs.values())
        rates.clear()
        dropped.train()
        torch.manual_seed(1)
        first, _ = dropped(tokens)
        zeros = {key: float((out == 0).float().mean()) for key, out in outputs.items()}
        torch.manual_seed(1)
        again, _ = dropped(tokens)
        other, _ = dropped(tokens)
    assert rates == [0.25] * 6  # attention weights, in both layers (the three training calls)
    assert all(0.18 < share < 0.32 for share in zeros.values()), zeros  # 1,280 outputs of each, a quarter zeroed
    assert len(zeros) == 4  # both blocks' attention and MLP outputs
    assert torch.equal(first, again) and not torch.allclose(first, other) and not torch.allclose(first, plain(tokens)[0])
    with pytest.raises(ValueError, match="dropout"):
        LlamaConfig(dropout=1.0)


def test_generation_runs_without_dropout_and_leaves_the_mode_as_it_was():
    model = tiny(dropout=0.5).train()
    prompt = [5, 17, 42, 8]
    greedy = generate(model, prompt, 20, temperature=0)
    assert model.training
    assert greedy == generate(model.eval(), prompt, 20, temperature=0) and not model.training
    assert generate(model.train(), prompt, 10, temperature=1.0, seed=3) == generate(model.eval(), prompt, 10, temperature=1.0, seed=3)


def test_the_training_settings_carry_dropout_into_the_model():
    from pydantic import ValidationError

    from crawl2model.train.loop import ModelSettings, TrainConfig

    settings = TrainConfig(steps=1, model={"dim": 32, "n_heads": 4, "dropout": 0.1}).model
    assert LlamaConfig(vocab_size=97, **settings.model_dump()).dropout == 0.1  # as train/pretrain.py builds it
    assert ModelSettings().dropout == 0.0 and LlamaConfig().dropout == 0.0
    with pytest.raises(ValidationError):
        ModelSettings(dropout=1.0)

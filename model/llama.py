"""A Llama-style decoder in one module: token embedding, RMSNorm, rotary position embedding,
grouped-query attention through `scaled_dot_product_attention` (FlashAttention kernels on GPU),
SwiGLU MLP, optional tied embeddings, optional dropout (on the attention weights, and on the
attention and MLP outputs before they join the residual stream; in training mode only).

Weights are laid out as Hugging Face's `LlamaForCausalLM` lays them out (RoPE rotates the two
halves of each head, not interleaved pairs), so export is a renaming (model/hf.py).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class LlamaConfig:
    vocab_size: int = 32768
    dim: int = 512
    n_layers: int = 8
    n_heads: int = 8
    n_kv_heads: int | None = None  # grouped-query attention: fewer key/value heads (None: n_heads)
    hidden_dim: int | None = None  # SwiGLU width (None: 8/3 of dim, rounded up to a multiple of 64)
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    dropout: float = 0.0  # training only: attention weights, attention and MLP outputs (0: none, no RNG drawn)

    def __post_init__(self):
        self.n_kv_heads = self.n_kv_heads or self.n_heads
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout ({self.dropout}) must be at least 0 and below 1")
        if self.hidden_dim is None:
            self.hidden_dim = 64 * math.ceil(8 * self.dim / 3 / 64)
        if self.dim % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValueError(f"dim ({self.dim}) must divide into n_heads ({self.n_heads}), and n_heads into "
                             f"n_kv_heads ({self.n_kv_heads})")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)  # in fp32, as HF does
        return self.weight * normed.to(x.dtype)


def rope_tables(head_dim: int, positions: torch.Tensor, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of each position's angles, (T, head_dim): frequency i turns the pair of
    coordinates (i, i + head_dim/2) by position * theta^(-2i/head_dim)."""
    inverse = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim)
    angles = torch.outer(positions.float(), inverse)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, heads, T, head_dim) by the tables of its T positions."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class KVCache:
    """Keys and values of every layer for positions generated so far, preallocated."""

    def __init__(self, config: LlamaConfig, batch: int, length: int, device, dtype):
        shape = (batch, config.n_kv_heads, length, config.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]

    def update(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = start + k.shape[2]
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


class Attention(nn.Module):
    def __init__(self, config: LlamaConfig, layer: int):
        super().__init__()
        self.layer, self.n_heads, self.n_kv_heads, self.head_dim = layer, config.n_heads, config.n_kv_heads, config.head_dim
        self.wq = nn.Linear(config.dim, config.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(config.dim, config.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(config.dim, config.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(config.n_heads * self.head_dim, config.dim, bias=False)
        self.dropout = config.dropout

    def forward(self, x, cos, sin, cache: KVCache | None = None, start: int = 0) -> torch.Tensor:
        B, T, _ = x.shape
        # -1 heads: under tensor parallelism a rank holds n_heads / tp of them (train/parallel.py)
        q = self.wq(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer, start, k, v)
        mask = None
        if start > 0 and T > 1:  # new queries after cached ones: each sees the cache and its past
            mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).tril(diagonal=start)
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                             is_causal=mask is None and T > 1, enable_gqa=self.n_kv_heads != self.n_heads)
        out = self.wo(out.transpose(1, 2).reshape(B, T, -1))
        return F.dropout(out, dropout, training=True) if dropout else out


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.w1 = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.w3 = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.w2 = nn.Linear(config.hidden_dim, config.dim, bias=False)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.w2(F.silu(self.w1(x)) * self.w3(x))
        return F.dropout(out, self.dropout, training=True) if self.dropout and self.training else out


class Block(nn.Module):
    def __init__(self, config: LlamaConfig, layer: int):
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.attention = Attention(config, layer)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.feed_forward = FeedForward(config)

    def forward(self, x, cos, sin, cache=None, start=0):
        x = x + self.attention(self.attention_norm(x), cos, sin, cache, start)
        return x + self.feed_forward(self.ffn_norm(x))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next tokens, in fp32; targets of -100 do not count."""
    return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


class Llama(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        # a dict by layer number: a pipeline stage keeps some layers under their own names
        self.layers = nn.ModuleDict({str(i): Block(config, i) for i in range(config.n_layers)})
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        self.apply(self._init)
        for name, param in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith(("wo.weight", "w2.weight")):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None,
                start: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab), and the mean cross-entropy against `targets` when given
        (positions whose target is -100 do not count). A pipeline stage (train/parallel.py) lacks
        the embedding (it takes the hidden states (B, T, dim) of the stage before) or the output
        (it gives its hidden states, and no loss)."""
        T = tokens.shape[1]
        if start + T > self.config.max_seq_len:
            raise ValueError(f"{start + T} positions, but the model was built for max_seq_len {self.config.max_seq_len}")
        cos, sin = rope_tables(self.config.head_dim, torch.arange(start, start + T, device=tokens.device),
                               self.config.rope_theta)
        x = self.tok_embeddings(tokens) if self.tok_embeddings is not None else tokens
        for layer in self.layers.values():
            x = layer(x, cos, sin, cache, start)
        if self.output is None:
            return x, None
        logits = self.output(self.norm(x))
        return logits, None if targets is None else lm_loss(logits, targets)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward and backward): 6 per weight of every matrix product
        (all parameters but the embedding lookup, unless it is tied to the output), plus attention's
        12 x layers x dim x sequence length (PaLM's appendix B)."""
        c = self.config
        matmul = self.num_params() - (0 if c.tie_embeddings else self.tok_embeddings.weight.numel())
        return 6 * matmul + 12 * c.n_layers * c.dim * (seq_len or c.max_seq_len)

"""Export to the Hugging Face Llama format: config.json, model.safetensors and the tokenizer, a
folder `transformers.AutoModelForCausalLM.from_pretrained` loads. Our modules already use HF's
layout (rotate-half RoPE), so export only renames weights."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from crawl2model.model.llama import Llama
from crawl2model.model.special_tokens import ASSISTANT, CHAT_TOKENS, END, EOS, PAD, ROLE_MARKERS

_NAMES = {  # ours -> HF's, per layer `{i}`
    "attention.wq": "self_attn.q_proj", "attention.wk": "self_attn.k_proj", "attention.wv": "self_attn.v_proj",
    "attention.wo": "self_attn.o_proj", "feed_forward.w1": "mlp.gate_proj", "feed_forward.w3": "mlp.up_proj",
    "feed_forward.w2": "mlp.down_proj", "attention_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}


def hf_name(name: str) -> str:
    if name == "tok_embeddings.weight":
        return "model.embed_tokens.weight"
    if name == "norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    _, layer, rest = name.split(".", 2)  # layers.{i}.attention.wq.weight
    module, _, kind = rest.rpartition(".")
    return f"model.layers.{layer}.{_NAMES[module]}.{kind}"


def hf_config(model: Llama, special: dict[str, int] | None = None) -> dict:
    c = model.config
    special = special or {}
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": c.vocab_size,
        "hidden_size": c.dim, "intermediate_size": c.hidden_dim, "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads, "num_key_value_heads": c.n_kv_heads, "head_dim": c.head_dim,
        "max_position_embeddings": c.max_seq_len, "rope_theta": c.rope_theta, "rms_norm_eps": c.norm_eps,
        "tie_word_embeddings": c.tie_embeddings, "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
        "initializer_range": 0.02, "torch_dtype": "float32",
        "bos_token_id": special.get("eos"), "eos_token_id": special.get("eos"), "pad_token_id": special.get("pad"),
    }


def export_hf(model: Llama, out_dir: str | Path, tokenizer_file: str | Path | None = None) -> Path:
    """Write the HF folder; with `tokenizer_file` (our tokenizer.json), the tokenizer too, with
    `<|endoftext|>` as its EOS and `<|pad|>` as padding when the vocabulary has them, and, when it
    has the chat markers, our chat template (`apply_chat_template` gives the ids SFT and DPO trained
    on) and `<|end|>` as a second EOS in generation_config.json, so `generate` stops at a turn's end."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {hf_name(name): tensor.detach().to("cpu").contiguous()
               for name, tensor in model.state_dict().items()
               if not (model.config.tie_embeddings and name == "output.weight")}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    special: dict[str, int] = {}
    if tokenizer_file is not None:
        from tokenizers import Tokenizer

        vocab = Tokenizer.from_file(str(tokenizer_file)).get_vocab()
        special = {name: vocab[token] for name, token in (("eos", EOS), ("pad", PAD)) if token in vocab}
        shutil.copyfile(tokenizer_file, out / "tokenizer.json")
        chat = all(token in vocab for token in CHAT_TOKENS)
        (out / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model.config.max_seq_len,
            **({"eos_token": EOS, "bos_token": EOS} if "eos" in special else {}),
            **({"pad_token": PAD} if "pad" in special else {}),
            **({"additional_special_tokens": list(CHAT_TOKENS), "chat_template": chat_template()} if chat else {}),
        }, indent=2))
        if chat and "eos" in special:
            (out / "generation_config.json").write_text(json.dumps({
                "bos_token_id": special["eos"], "eos_token_id": [special["eos"], vocab[END]],
                "pad_token_id": special.get("pad")}, indent=2))
    (out / "config.json").write_text(json.dumps(hf_config(model, special), indent=2))
    return out


def chat_template() -> str:
    """train/chat.py's `ChatTokens.encode` as a Jinja chat template, for tokenizer_config.json.
    Text goes between the markers as it is (no spaces, no newlines, no stripping): the tokenizer
    splits the rendered string at its added tokens and encodes each piece alone, which is what
    `encode` does, so `apply_chat_template` gives the same ids (tests/model/test_hf.py)."""
    markers = "{" + ", ".join(f"'{role}': '{token}'" for role, token in ROLE_MARKERS.items()) + "}"
    return ("{%- set markers = " + markers + " -%}"
            "{%- for message in messages -%}"
            "{%- if message['role'] not in markers -%}"
            "{{ raise_exception('a role is one of " + ", ".join(ROLE_MARKERS) + ", not ' + message['role']) }}"
            "{%- endif -%}"
            "{{ markers[message['role']] + message['content'] + '" + END + "' }}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{ '" + ASSISTANT + "' }}{%- endif -%}")

"""The special tokens of every tokenizer a run trains, defined once. They take the first ids, in
this order: `<|endoftext|>` (0) ends every document in the token shards; `<|pad|>` pads batches;
the chat markers frame the turns of the chat template (train/chat.py)."""
EOS = "<|endoftext|>"
PAD = "<|pad|>"
SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
CHAT_TOKENS = (SYSTEM, USER, ASSISTANT, END)
ROLE_MARKERS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}  # the chat template's roles, each a marker
SPECIAL_TOKENS = (EOS, PAD, *CHAT_TOKENS)

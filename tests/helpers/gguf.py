"""A tiny random GGUF that llama.cpp's `llama-server` loads in a second, written with the `gguf`
package (0.5 MB, in ~0.05 s).

Its weights are random except for one rigged direction: every token's embedding carries a large
constant in dimension 0, which no layer writes to, and the output head scores printable-ASCII
tokens +3 and every other token (control tokens, end of turn, other bytes) -3 along it. So
replies are random printable text that never ends on its own: a reply is exactly as long as the
token limit allows, which makes limits, stop sequences and grammars checkable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _byte_chars() -> list[str]:
    """GPT-2's byte-level alphabet: byte b as the printable character that stands for it."""
    kept = {*range(33, 127), *range(161, 173), *range(174, 256)}
    chars, shifted = [], 0
    for b in range(256):
        if b in kept:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + shifted))
            shifted += 1
    return chars


def write_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """A 2-layer, 64-wide llama with a 262-token byte-level BPE vocabulary and a ChatML template;
    random weights rigged to emit printable ASCII only (see the module docstring)."""
    import gguf

    rng = np.random.default_rng(seed)
    n_embd, n_head, n_layer, n_ff = 64, 4, 2, 128
    merges = ["Ġ t", "h e", "i n", "e r"]
    tokens = [*_byte_chars(), *(m.replace(" ", "") for m in merges), "<|im_start|>", "<|im_end|>"]
    n_vocab = len(tokens)
    normal, control = 1, 3  # llama.cpp's token types
    printable = np.zeros(n_vocab, dtype=bool)
    printable[0x20:0x7F] = True  # space..tilde
    printable[256 : 256 + len(merges)] = True

    def rand(*shape: int, scale: float = 0.02) -> Any:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("nasloop-tiny-random")
    writer.add_context_length(2048)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([normal] * (n_vocab - 2) + [control, control])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(n_vocab - 2)
    writer.add_eos_token_id(n_vocab - 1)
    writer.add_add_bos_token(False)
    writer.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    embedding = rand(n_vocab, n_embd)
    embedding[:, 0] = 1.0  # the rigged direction: large, and nothing below writes to it
    writer.add_tensor("token_embd.weight", embedding)
    ones = np.ones(n_embd, dtype=np.float32)
    for i in range(n_layer):
        attn_out, ffn_down = rand(n_embd, n_embd), rand(n_embd, n_ff)
        attn_out[0] = ffn_down[0] = 0.0  # (out, in): row 0 writes dimension 0
        writer.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.attn_q.weight", rand(n_embd, n_embd))
        writer.add_tensor(f"blk.{i}.attn_k.weight", rand(n_embd, n_embd))
        writer.add_tensor(f"blk.{i}.attn_v.weight", rand(n_embd, n_embd))
        writer.add_tensor(f"blk.{i}.attn_output.weight", attn_out)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", rand(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", rand(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", ffn_down)
    writer.add_tensor("output_norm.weight", ones)
    head = rand(n_vocab, n_embd, scale=1.0)  # variety among the printable tokens
    # after the norm, dimension 0 is about +8: printable tokens ~ +24, the rest ~ -24
    head[:, 0] = np.where(printable, 3.0, -3.0)
    writer.add_tensor("output.weight", head)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path

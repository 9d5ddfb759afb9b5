"""Generate a tiny, randomly initialised Qwen2 chat model for tests and the local demo.

Nothing is downloaded: a byte-level BPE tokenizer is trained in-process on a small built-in
corpus, a Qwen2 config (head_dim 64, which vLLM's CPU attention supports) is initialised at
random with a fixed seed, and a ChatML chat template (as Qwen2.5 uses) is attached, so
vLLM serves it through /v1/chat/completions like the real model.

    python scripts/make_tiny_model.py OUT_DIR [--seed 0] [--layers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = """
The quick brown fox jumps over the lazy dog. A fleet of GPU instances serves a language model
in many regions. Requests reach the nearest healthy region through latency based DNS routing.
def add(a, b): return a + b  # Python code with functions, classes, loops and imports
for i in range(10): print(i * i)  SELECT id, name FROM users WHERE id = 42;
Solve 2x + 3 = 7. The integral of x^2 is x^3 / 3. 12 * 7 = 84. sqrt(16) = 4. 3.14159
你好，世界。请用中文回答这个问题。今天天气很好。我们的模型在多个区域运行。
Bonjour le monde. Hola mundo. Guten Tag. こんにちは世界。안녕하세요.
Hello! How can I help you today? Please explain the answer step by step.
"""


def _corpus() -> list[str]:
    lines = [ln.strip() for ln in _CORPUS.strip().splitlines() if ln.strip()]
    # Repeat with variations so the BPE merges cover common English subwords.
    words = " ".join(lines).split()
    extra = [" ".join(words[i : i + 12]) for i in range(0, len(words), 3)]
    return lines * 20 + extra * 10


def build(out: Path, *, seed: int, layers: int, vocab_size: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)

    vocab = len(fast)
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=layers,
        num_attention_heads=2,  # head_dim = 128 / 2 = 64
        num_key_value_heads=1,
        max_position_embeddings=4096,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
        torch_dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").write_text(
        json.dumps(
            {
                "bos_token_id": config.bos_token_id,
                "eos_token_id": [config.eos_token_id, config.pad_token_id],
                "pad_token_id": config.pad_token_id,
            },
            indent=2,
        )
    )
    params = sum(p.numel() for p in model.parameters())
    print(f"tiny Qwen2 model: {params / 1e6:.2f}M parameters, vocab {vocab}, {layers} layers -> {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=2048)
    args = parser.parse_args(argv)
    if args.layers < 1 or args.vocab_size < 512:
        parser.error("--layers must be >= 1 and --vocab-size >= 512")
    build(args.out_dir, seed=args.seed, layers=args.layers, vocab_size=args.vocab_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())

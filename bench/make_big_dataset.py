"""A large JSONL dataset and a small Llama with its own BPE tokenizer, for timing data loading.

    python bench/make_big_dataset.py OUT_DIR [--rows 1000000]

writes OUT_DIR/data.jsonl (about 300 bytes a row of random words: 1M rows, ~306 MB) and
OUT_DIR/model (a 2-layer Llama, hidden 48, with a byte-level BPE tokenizer of 8,192 tokens
trained by `tokenizers` and saved by `save_pretrained`). The token cache figures in
bench/RESULTS.md were taken on these; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to write data.jsonl and model/ into")
    parser.add_argument("--rows", type=int, default=1_000_000, help="JSONL rows (default 1,000,000)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(5000)]
    with open(args.out / "data.jsonl", "w") as f:
        for _ in range(args.rows):
            out, n = [], 0
            while n < 290:
                w = rng.choice(words)
                out.append(w)
                n += len(w) + 1
            f.write(json.dumps({"text": " ".join(out).capitalize() + "."}) + "\n")

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from aios_tui.engine.models import tiny_config, tiny_model

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=8192, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator((" ".join(rng.choice(words) for _ in range(50)) for _ in range(20000)), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>",
                                  eos_token="</s>", model_max_length=2048)
    cfg = tiny_config(hidden_size=48, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=512, vocab_size=len(tok))
    tiny_model(cfg, seed=1).save_pretrained(args.out / "model")
    tok.save_pretrained(args.out / "model")
    print(f"wrote {args.out / 'data.jsonl'} ({args.rows:,} rows) and {args.out / 'model'} (vocabulary {len(tok):,})")


if __name__ == "__main__":
    main()

"""Writes ``sample.txt``: the bundled dataset the built-in ``tiny`` model trains on by default.

It mixes short sentences about fine-tuning with small, exactly learnable patterns (counting,
letter runs, sums), so a few hundred CPU steps show the loss falling well below the 5.56 nats
of a uniform guess over 259 byte tokens. Deterministic: ``python -m aios_tui.data.make_sample``
rewrites the same file.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

SENTENCES = [
    "A low-rank adapter learns a small update while the base model stays frozen.",
    "The loss falls as the model learns the patterns in its training text.",
    "Rank sets how much an adapter can learn; alpha scales what it learns.",
    "AdaLoRA starts with a larger rank and prunes the least useful directions.",
    "IA3 learns one scaling vector per adapted layer and nothing else.",
    "Full fine-tuning updates every weight and needs the most memory.",
    "A checkpoint holds the adapter, the optimizer state and the data position.",
    "A stopped run resumes exactly where it left off.",
    "Gradient checkpointing trades compute for memory by recomputing activations.",
    "Mixed precision runs the matrix products in bf16 and keeps the weights in fp32.",
    "The console follows a run by reading its metrics file, line by line.",
    "Each metrics line is one JSON object with the step, the loss and the learning rate.",
    "The learning rate warms up for a few steps, then decays along a cosine.",
    "Evaluation loss is measured on blocks the model never trains on.",
    "Merging folds the adapter into the base weights, so inference needs no extra layers.",
    "The tiny model reads bytes, so it needs no tokenizer download.",
    "Training survives a dropped SSH link because it runs in its own session.",
    "A stop file asks the run to save a checkpoint and stop cleanly.",
    "Query and value projections are the usual first targets for an adapter.",
    "More target modules give an adapter more capacity and cost more memory.",
]

WORDS = ["model", "adapter", "rank", "alpha", "loss", "step", "batch", "token", "layer", "weight"]


def _count(rng: random.Random) -> str:
    start = rng.randint(0, 90)
    n = rng.randint(4, 9)
    return f"count {start} to {start + n - 1}: " + " ".join(str(start + i) for i in range(n)) + "."


def _letters(rng: random.Random) -> str:
    letters = string.ascii_lowercase
    start = rng.randint(0, 18)
    n = rng.randint(4, 8)
    run = letters[start:start + n]
    return f"letters {run[0]} to {run[-1]}: " + " ".join(run) + "."


def _sum(rng: random.Random) -> str:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    return f"{a} + {b} = {a + b}."


def _repeat(rng: random.Random) -> str:
    word = rng.choice(WORDS)
    n = rng.randint(2, 5)
    return f"say {word} {n} times: " + " ".join([word] * n) + "."


def build(lines: int = 1600, seed: int = 1234) -> str:
    rng = random.Random(seed)
    makers = [_count, _letters, _sum, _repeat]
    out = []
    for _ in range(lines):
        if rng.random() < 0.3:
            out.append(rng.choice(SENTENCES))
        else:
            out.append(rng.choice(makers)(rng))
    return "\n".join(out) + "\n"


def main() -> None:
    path = Path(__file__).resolve().parent / "sample.txt"
    path.write_text(build(), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

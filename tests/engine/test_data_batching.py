"""A large dataset is tokenised in few tokenizer calls into 4-byte ids, with the same ids as
one text at a time gives."""

from __future__ import annotations

import numpy as np

from aios_tui.data import Document


class Counting:
    """The byte tokenizer, counting the calls that tokenise text."""

    def __init__(self):
        from aios_tui.engine.tokenizer import byte_tokenizer

        self.tok = byte_tokenizer()
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.tok, name)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.tok(*args, **kwargs)


def test_many_documents_take_few_tokenizer_calls_and_keep_their_ids():
    from aios_tui.engine.data import IGNORE, tokenize_documents

    docs = [Document(f"row {i} " * (i % 7 + 1), prompt="Q: " if i % 4 == 0 else "") for i in range(3000)]
    tok = Counting()
    ids, labels = tokenize_documents(docs, tok)
    assert tok.calls <= 4  # one a document before
    assert ids.dtype == labels.dtype == np.int32
    expect_ids, expect_labels = [], []
    for d in docs:  # each document framed and tokenised on its own
        prompt = list(d.prompt.encode()) if d.prompt else []
        text = list(d.text.encode())
        expect_ids += [257, *prompt, *text, 258]
        expect_labels += [IGNORE] * (1 + len(prompt)) + [*text, 258]
    assert ids.tolist() == expect_ids and labels.tolist() == expect_labels

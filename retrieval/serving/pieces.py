"""Pieces: the embedding model's Unigram tokenizer, giving `tokenizers`' ids at a tenth of its memory.

`tokenizers` keeps a Unigram vocabulary in a trie of one hash map per byte: for the 250,002 pieces of
multilingual-e5-small that is about 255 MiB of every serving process, a third of it. Here the pieces live in
a FrozenStrMap (retrieval/serving/compact.py, about 10 MiB) and the Viterbi search of `tokenizers`'
`Unigram::encode_optimized` is done in Python: the same candidates in the same order, the same float64 sums,
the same strict `>` (so ties go to the same piece), the same `<unk>` for a character no piece covers, runs of
them fused. Normalising and pre-tokenising stay with `tokenizers` itself (its normaliser and pre-tokeniser,
read from the same tokenizer.json); the special tokens, the truncation and the padding are redone as
`Tokenizer.encode_batch` does them for this layout.

`PieceTokenizer.load` returns None for a tokenizer.json it does not reproduce (another model type, byte
fallback, special tokens not split, another post-processor); the caller then keeps `tokenizers`' own.

>>> t = PieceTokenizer([("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", -1e9), ("▁a", -1.0),
...                     ("b", -2.0), ("▁ab", -2.5)], unk_id=3, bos_id=0, eos_id=2, pad_id=1, max_length=8)
>>> t.pieces("▁abb")
[6, 5]
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrieval.serving.compact import FrozenStrMap, release_freed_memory

# tokenizers' kUnkPenalty: an unknown character scores the lowest piece's score minus this.
UNK_PENALTY = 10.0
NO_PATH = float("-inf")


class PieceTokenizer:
    """Unigram pieces to ids, with `<s> ... </s>`, right truncation and right padding to the longest."""

    def __init__(self, vocab: Sequence[tuple[str, float]], unk_id: int, bos_id: int, eos_id: int, pad_id: int,
                 max_length: int, normalize: Callable[[str], str] = lambda s: s,
                 pre_tokenize: Callable[[str], list[str]] = lambda s: [s]):
        if max_length < 3:
            raise ValueError(f"max_length must leave room for <s> and </s>, got {max_length}")
        if not 0 <= unk_id < len(vocab):
            raise ValueError(f"unk_id {unk_id} is not in a vocabulary of {len(vocab)} pieces")
        pieces = [piece for piece, _ in vocab]
        self._pieces = FrozenStrMap(pieces, range(len(pieces)))  # raises ValueError for a piece given twice
        self._scores = array("d", (score for _, score in vocab))
        # The longest piece starting with each character: the search looks no further.
        self._reach: dict[str, int] = {}
        for piece in pieces:
            if len(piece) > self._reach.get(piece[0], 0):
                self._reach[piece[0]] = len(piece)
        del pieces
        self._unk_score = min(self._scores) - UNK_PENALTY
        self.unk_id, self.bos_id, self.eos_id, self.pad_id = unk_id, bos_id, eos_id, pad_id
        self.max_length = max_length
        self._normalize, self._pre_tokenize = normalize, pre_tokenize

    # -- reading tokenizer.json ----------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, max_length: int, split_special_tokens: bool, pad_token: str) -> PieceTokenizer | None:
        """The tokenizer of `path` (a tokenizer.json), or None when this class does not reproduce it."""
        from tokenizers import Tokenizer

        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        model = spec.get("model") or {}
        if model.get("type") != "Unigram" or model.get("byte_fallback") or model.get("unk_id") is None:
            return None
        if spec.get("added_tokens") and not split_special_tokens:
            return None  # special tokens typed in the text would be matched whole: not done here
        if any(not t.get("special") for t in spec.get("added_tokens") or []):
            return None
        ends = _template_ends(spec.get("post_processor"))
        if ends is None:
            return None
        vocab = model["vocab"]
        ids = {piece: i for i, (piece, _) in enumerate(vocab) if piece in (pad_token, *ends)}
        if pad_token not in ids or any(token not in ids for token in ends):
            return None
        # The same normaliser and pre-tokeniser, on a tokenizer without the vocabulary (a few MiB).
        shell = Tokenizer.from_str(json.dumps({**spec, "model": {"type": "Unigram", "unk_id": 0,
                                                                 "vocab": [["<unk>", 0.0]], "byte_fallback": False},
                                               "added_tokens": [], "post_processor": None, "truncation": None,
                                               "padding": None}))
        del spec
        normalizer, pre_tokenizer = shell.normalizer, shell.pre_tokenizer
        normalize = normalizer.normalize_str if normalizer is not None else (lambda s: s)

        def pre_tokenize(text: str) -> list[str]:
            return [part for part, _ in pre_tokenizer.pre_tokenize_str(text)] if pre_tokenizer else [text]

        tokenizer = cls(vocab, int(model["unk_id"]), ids[ends[0]], ids[ends[1]], ids[pad_token], max_length,
                        normalize, pre_tokenize)
        del model, vocab
        release_freed_memory()  # the parsed tokenizer.json: about 40 MiB
        return tokenizer

    # -- encoding ------------------------------------------------------------------------------
    def pieces(self, text: str) -> list[int]:
        """The ids of one pre-tokenised piece of text: the best-scoring split (Viterbi), as `tokenizers`."""
        n = len(text)
        if n == 0:
            return []
        prefixes, scores, reach, unk = self._pieces.prefixes, self._scores, self._reach, self.unk_id
        # best[end]: the best score of a split of text[:end]; -inf until a candidate reaches it, which is
        # tokenizers' "no node yet" (every score is finite, so the first candidate always wins).
        best = [NO_PATH] * (n + 1)
        best[0] = 0.0
        came_from = [0] * (n + 1)
        chosen = [0] * (n + 1)
        for start in range(n):
            here = best[start]
            stop = min(n, start + reach.get(text[start], 0))
            single = False
            for end, piece in prefixes(text, start, stop):
                score = scores[piece] + here
                if score > best[end]:
                    best[end], came_from[end], chosen[end] = score, start, piece
                single = single or end == start + 1
            if not single:
                score = self._unk_score + here
                if score > best[start + 1]:
                    best[start + 1], came_from[start + 1], chosen[start + 1] = score, start, unk
        out: list[int] = []
        end = n
        while end > 0:
            piece = chosen[end]
            start = came_from[end]
            # Runs of unknown characters become one <unk>, as tokenizers fuses them.
            if not (piece == self.unk_id and out and out[-1] == self.unk_id):
                out.append(piece)
            end = start
        out.reverse()
        return out

    def ids(self, text: str) -> list[int]:
        """`<s>`, the text's pieces (cut to fit max_length), `</s>`."""
        content: list[int] = []
        for part in self._pre_tokenize(self._normalize(text)):
            content += self.pieces(part)
        return [self.bos_id, *content[: self.max_length - 2], self.eos_id]

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """input_ids, attention_mask and token_type_ids (int64), padded on the right to the longest text."""
        rows = [self.ids(text) for text in texts]
        width = max((len(r) for r in rows), default=0)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
        return input_ids, mask, np.zeros_like(input_ids)


def _template_ends(processor: dict | None) -> tuple[str, str] | None:
    """(`<s>`, `</s>`) when the post-processor puts exactly one special token before and after one text."""
    if not processor or processor.get("type") != "TemplateProcessing":
        return None
    single = processor.get("single") or []
    if len(single) != 3 or "Sequence" not in single[1]:
        return None
    first, last = single[0].get("SpecialToken"), single[2].get("SpecialToken")
    if not first or not last or first.get("type_id") or last.get("type_id") or single[1]["Sequence"].get("type_id"):
        return None
    specials = processor.get("special_tokens") or {}
    for token in (first, last):
        if len(specials.get(token["id"], {}).get("ids", [])) != 1:
            return None
    return first["id"], last["id"]

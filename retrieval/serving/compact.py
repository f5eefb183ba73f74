"""Compact: jieba's dictionary in a marisa-trie instead of a dict, and freed heap handed back to the system.

jieba keeps its dictionary of about 500,000 words and word prefixes as a dict: about 60 MiB of resident
memory, nearly all of it one Python string object per key. `TrieMap` holds the same keys in a `marisa_trie.Trie`
(about 1 MiB) and their counts in an array indexed by the trie's key ids (about 2 MiB), and answers what jieba
asks of it as the dict would.

>>> m = TrieMap(["充值", "充", "top"], [5, 0, 9])
>>> m["充值"], m.get("充"), m.get("值"), "top" in m, len(m)
(5, 0, None, True, 3)
"""

from __future__ import annotations

import contextlib
import ctypes
from array import array
from collections.abc import Iterable, Iterator, Mapping

import marisa_trie


class TrieMap(Mapping):
    """`keys[i] -> values[i]` (integers), read-only: what a dict built from the same pairs answers.

    jieba reads its dictionary with `in`, `[]` and `get` only (`add_word`, which writes to it, is never called
    here). A key that is not a string, or one marisa cannot encode (a lone surrogate), is simply not there.
    Keys may not hold the NUL character: marisa-trie's `Trie` looks such keys up wrongly (pytries/marisa-trie
    issue 47: "a\x00" is found as "a"), so they are refused when building and never found when asked.
    """

    __slots__ = ("_trie", "_values")

    def __init__(self, keys: Iterable[str], values: Iterable[int]):
        keys = keys if isinstance(keys, list | tuple) else list(keys)
        values = values if isinstance(values, list | tuple) else list(values)
        if len(values) != len(keys):
            raise ValueError(f"TrieMap needs one value a key: {len(keys)} keys, {len(values)} values")
        if any("\x00" in key for key in keys):
            raise ValueError("TrieMap keys cannot hold the NUL character")
        self._trie = trie = marisa_trie.Trie(keys)
        if len(trie) != len(keys):
            raise ValueError("TrieMap keys must be distinct: a key is there twice")
        by_id = [0] * len(keys)
        for key, value in zip(keys, values, strict=True):
            by_id[trie[key]] = value
        try:
            self._values = array("i", by_id)  # 4 bytes a count when they all fit, as jieba's do
        except OverflowError:
            self._values = array("q", by_id)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, int]) -> TrieMap:
        return cls(list(mapping.keys()), list(mapping.values()))

    def get(self, key: str, default=None):
        if type(key) is str and "\x00" not in key:
            try:
                i = self._trie.get(key)
            except UnicodeEncodeError:
                return default
            if i is not None:
                return self._values[i]
        return default

    def __getitem__(self, key: str) -> int:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        try:
            return type(key) is str and "\x00" not in key and key in self._trie
        except UnicodeEncodeError:
            return False

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[str]:
        return self._trie.iterkeys()


def release_freed_memory() -> None:
    """Hand the pages freed while loading back to the system: glibc keeps freed heap memory mapped (and counted
    in the process's resident memory) until it is asked to trim. Elsewhere than glibc: nothing to do."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def compact_jieba() -> None:
    """Load jieba's dictionary now and keep it as a TrieMap: the same words and counts, about 55 MiB less.

    Call this after `jieba.dt.tmp_dir` is set and before serving; calling it again does nothing.
    """
    import jieba

    jieba.dt.check_initialized()
    with jieba.dt.lock:
        if not isinstance(jieba.dt.FREQ, TrieMap):
            jieba.dt.FREQ = TrieMap.from_dict(jieba.dt.FREQ)
            release_freed_memory()  # the dict and its strings

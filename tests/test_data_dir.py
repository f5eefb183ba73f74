"""What the app keeps on disk stays in its data folder, readable by its owner only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from retrieval.settings import ROOT

LOAD = "from retrieval.loading import load_assistant; print(load_assistant().ask('谷歌语音怎么充值').kind)"


def test_jiebas_cache_is_kept_in_the_data_folder_not_in_the_shared_tmp(tmp_path, kb_dir):
    data, shared_tmp = tmp_path / "data", tmp_path / "tmp"
    shared_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(shared_tmp), "ASSISTANT_DATA_DIR": str(data), "ASSISTANT_MODEL": "hashing",
           "ASSISTANT_KNOWLEDGE_DIR": str(kb_dir),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", LOAD], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert (data / "jieba.cache").is_file()  # jieba did cut Chinese, and cached its dictionary here
    assert [p.name for p in shared_tmp.iterdir() if "jieba" in p.name] == []
    assert (data / "jieba.cache").stat().st_mode & 0o077 == 0  # written through mkstemp: owner only


def test_the_folder_is_made_when_missing_and_a_read_only_one_is_no_error(tmp_path):
    import jieba

    from retrieval.loading import keep_word_cache_in

    before = jieba.dt.tmp_dir
    try:
        keep_word_cache_in(tmp_path / "new" / "data")
        assert Path(jieba.dt.tmp_dir) == tmp_path / "new" / "data" and (tmp_path / "new" / "data").is_dir()
        blocker = tmp_path / "file"
        blocker.write_text("x")
        keep_word_cache_in(blocker / "data")  # cannot be made: no exception, jieba just cannot cache
    finally:
        jieba.dt.tmp_dir = before
    shutil.rmtree(tmp_path / "new")

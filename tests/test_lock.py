"""The lock files: every package the requirements ask for, pinned to the version asked and hashed, and the
deployment's lock the same versions as the developers'. (`make lock` writes them; `make lock-check` installs
one into a new environment.)"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from retrieval.settings import ROOT

LOCKED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$")


def requirements(path: Path) -> list[Requirement]:
    """The requirements a file asks for, following -r."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += requirements(path.parent / line[3:].strip())
        elif line:
            found.append(Requirement(line))
    return found


def lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every package a lock file pins."""
    entries: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := LOCKED.match(line):
            name = canonicalize_name(m.group(1))
            entries[name] = (m.group(2), [])
        elif line.strip().startswith("--hash=") and name:
            entries[name][1].append(line.strip().removeprefix("--hash=").rstrip(" \\"))
        elif not line.startswith("    "):
            name = None
    return entries


@pytest.mark.parametrize("wanted, locked", [("requirements.txt", "requirements.lock"),
                                            ("requirements-dev.txt", "requirements-dev.lock")])
def test_every_requirement_is_locked_at_the_version_it_asks_for(wanted, locked):
    entries = lock(ROOT / locked)
    stale = [f"{r} (locked: {entries.get(canonicalize_name(r.name), ('nothing',))[0]})"
             for r in requirements(ROOT / wanted)
             if canonicalize_name(r.name) not in entries
             or not r.specifier.contains(entries[canonicalize_name(r.name)][0], prereleases=True)]
    assert not stale, f"{locked} is out of date: run `make lock` and commit it. {stale}"
    # Extras are written out as the packages they bring (--strip-extras): psycopg[binary] is psycopg-binary.
    assert "psycopg-binary" in entries


@pytest.mark.parametrize("locked", ["requirements.lock", "requirements-dev.lock"])
def test_every_locked_package_has_its_file_hashes(locked):
    entries = lock(ROOT / locked)
    assert len(entries) > 50
    unhashed = [name for name, (_, hashes) in entries.items()
                if not hashes or not all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes)]
    assert not unhashed
    assert "pip" not in entries or "setuptools" in entries  # --allow-unsafe: the installers are locked too


def test_the_deployment_lock_is_the_developers_lock_cut_down():
    deployment, developers = lock(ROOT / "requirements.lock"), lock(ROOT / "requirements-dev.lock")
    assert set(deployment) < set(developers)
    assert {name: entry[0] for name, entry in deployment.items()} == \
        {name: developers[name][0] for name in deployment}
    assert not {"pytest", "hypothesis", "playwright", "ruff", "pip-tools", "matplotlib"} & set(deployment)


def test_torch_is_the_cpu_build_on_this_machines_disk():
    """Its one hash is the local file's: no other torch (PyPI's CUDA builds are several GB) can install."""
    version, hashes = lock(ROOT / "requirements-dev.lock")["torch"]
    assert version.endswith("+cpu") and len(hashes) == 1
    digest = hashlib.sha256()
    with open(Path("/opt/wheels") / f"torch-{version}-cp311-cp311-manylinux_2_28_x86_64.whl", "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    assert hashes == [f"sha256:{digest.hexdigest()}"]

"""Replicas: two chat servers and the HTTP API behind nginx, all on one PostgreSQL, on this machine's loopback.

    .venv/bin/python deploy/replicas.py up [--port 8080] [--chat 2] [--state DIR]

starts, each on a free 127.0.0.1 port: PostgreSQL (deploy/postgres.sh, in DIR/postgres); `python -m retrieval
prepare` once, which checks the index (building it if it is missing or stale); the chat servers (`streamlit
run`, what `make run` serves) and the API (`python -m retrieval serve`), all reading that one index and
writing to that one database; then nginx (deploy/nginx.conf) in front of them on --port. It prints the
address, and stops everything it started on Ctrl-C (or SIGTERM). docs/deploy.md explains the picture.

tests/test_deploy.py drives it through `Replicas`: a context manager that starts the set and always stops it.
Every process is a child of this one and is asked to die with it (PR_SET_PDEATHSIG); PostgreSQL, which
daemonises, is stopped by `stop()`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retrieval.measure.browser import PYTHON, _die_with_parent, _stop, _tail, free_port  # noqa: E402

NGINX = Path("/usr/sbin/nginx")
POSTGRES_SCRIPT = ROOT / "deploy" / "postgres.sh"
CONFIG = ROOT / "deploy" / "nginx.conf"
FIELD = re.compile(r"\{\{([a-z_]+)\}\}")   # a field of nginx.conf, filled in by render_config
PAGE = "chat_server.py"  # what `make run` serves: the page, with the assistant loaded when the server starts
START_TIMEOUT = 300.0   # one server until healthy (the API loads the model first: seconds; minutes on a busy box)
PREPARE_TIMEOUT = 1800.0
# What every replica runs with: no second compiled model (the replicas already answer side by side: about
# 90 MiB less each), and two malloc arenas instead of eight per core.
REPLICA_ENV = {"ASSISTANT_BUSY_MODEL": "0", "MALLOC_ARENA_MAX": "2"}


class ReplicasError(RuntimeError):
    """A part of the set could not start; the message carries its output."""


@dataclass
class Process:
    name: str
    url: str
    health: str            # the path that answers 200 once the process can serve
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Replicas:
    """The whole set; `with Replicas(state) as r:` starts it and stops it, whatever happens in between."""

    state: Path
    port: int | None = None
    chat: int = 2
    data_dir: Path | None = None      # the index and jieba's cache (default: ASSISTANT_DATA_DIR, or var/)
    password: str = ""                # the operator's, for /insights
    processes: dict[str, Process] = field(default_factory=dict)
    database_url: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chat_servers(self) -> list[Process]:
        return [p for name, p in self.processes.items() if name.startswith("chat-")]

    def __enter__(self) -> Replicas:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- starting --------------------------------------------------------------------------------
    def start(self) -> None:
        if not NGINX.exists():
            raise ReplicasError(f"no nginx at {NGINX}: run `make nginx` (Debian's nginx)")
        self.state = Path(self.state).resolve()
        self.state.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # PostgreSQL and nginx's workers run as other users and must reach their folders
            self.state.chmod(0o711)
        self.port = self.port or free_port()
        self.database_url = self._start_postgres()
        env = self._env()
        self._prepare(env)
        chat_ports = [free_port() for _ in range(self.chat)]
        # One cookie secret for all (Streamlit takes it from the environment only): a cookie one replica signed
        # is good on the other.
        chat_env = {**env, "STREAMLIT_SERVER_COOKIE_SECRET": self._secret("cookie-secret")}
        for n, port in enumerate(chat_ports, 1):
            self._spawn(f"chat-{n}", f"http://127.0.0.1:{port}", "/_stcore/health", chat_env, [
                str(PYTHON), "-m", "streamlit", "run", PAGE, "--server.port", str(port),
                "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
                "--server.runOnSave", "false", "--browser.gatherUsageStats", "false"])
        api_port = free_port()
        self._spawn("api", f"http://127.0.0.1:{api_port}", "/healthz", env,
                    [str(PYTHON), "-m", "retrieval", "serve", "--host", "127.0.0.1", "--port", str(api_port)])
        for process in list(self.processes.values()):
            self._wait_healthy(process)
        config = self._nginx_config(chat_ports, api_port)
        self._spawn("nginx", self.url, "/_stcore/health", os.environ.copy(),
                    [str(NGINX), "-c", str(config), "-p", str(config.parent), "-e", str(config.parent / "error.log")])
        self._wait_healthy(self.processes["nginx"])
        self._wait_healthy(self.processes["nginx"], path="/healthz")
        (self.state / "replicas.json").write_text(json.dumps({
            "url": self.url, "processes": {n: {"url": p.url, "pid": p.pid, "log": str(p.log)}
                                           for n, p in self.processes.items()}}, indent=1), encoding="utf-8")

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **REPLICA_ENV,
               "ASSISTANT_DATABASE_URL": self.database_url}
        if self.data_dir is not None:
            env["ASSISTANT_DATA_DIR"] = str(self.data_dir)
        if self.password:
            env["ASSISTANT_OPERATOR_PASSWORD"] = self.password
        return env

    def _secret(self, name: str) -> str:
        path = self.state / name
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_hex(32), encoding="utf-8")
        return path.read_text(encoding="utf-8").strip()

    def _start_postgres(self) -> str:
        folder = self.state / "postgres"
        folder.mkdir(exist_ok=True)
        done = subprocess.run(["sh", str(POSTGRES_SCRIPT), "start", str(folder), str(free_port())],
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise ReplicasError(f"PostgreSQL did not start ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout.strip().splitlines()[-1]

    def _prepare(self, env: dict[str, str]) -> None:
        """The index, checked (and built if needed) by one process before any server reads it."""
        log = self.state / "prepare.log"
        with open(log, "wb") as out:
            done = subprocess.run([str(PYTHON), "-m", "retrieval", "prepare"], cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=PREPARE_TIMEOUT,
                                  preexec_fn=_die_with_parent)
        if done.returncode != 0:
            raise ReplicasError(f"`python -m retrieval prepare` failed ({done.returncode}):\n{_tail(log)}")

    def _spawn(self, name: str, url: str, health: str, env: dict[str, str], command: list[str]) -> Process:
        log = self.state / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.processes[name] = Process(name, url, health, process, log)
        return self.processes[name]

    def _wait_healthy(self, process: Process, path: str | None = None, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not healthy(process.url + (path or process.health)):
            if process.process.poll() is not None:
                raise ReplicasError(f"{process.name} exited with {process.process.returncode}:\n{_tail(process.log)}")
            if time.monotonic() > deadline:
                raise ReplicasError(f"{process.name} not healthy after {timeout:.0f} s:\n{_tail(process.log)}")
            time.sleep(0.3)

    def _nginx_config(self, chat_ports: list[int], api_port: int) -> Path:
        folder = self.state / "nginx"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (folder / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        user = ""
        if os.geteuid() == 0:  # nginx's workers then run as nobody: let them write their temporary files
            user = "user nobody nogroup;"
            shutil.chown(folder / "tmp", "nobody")
            for sub in (folder / "tmp").iterdir():
                shutil.chown(sub, "nobody")
        text = render_config(CONFIG.read_text(encoding="utf-8"), user=user, state=str(folder), port=str(self.port),
                             api_port=str(api_port),
                             chat_servers="\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;"
                                                    for p in chat_ports))
        path = folder / "nginx.conf"
        path.write_text(text, encoding="utf-8")
        check = subprocess.run([str(NGINX), "-t", "-c", str(path), "-p", str(folder), "-e", str(folder / "error.log")],
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise ReplicasError(f"nginx refused {path}:\n{check.stderr}")
        return path

    # -- stopping ----------------------------------------------------------------------------------
    def kill(self, name: str) -> None:
        """Kill one process at once (SIGKILL), as a crash would: no goodbye to anyone."""
        process = self.processes[name].process
        process.kill()
        process.wait(timeout=30)

    def stop(self) -> None:
        """Stop everything this set started: nginx first, then the servers, then PostgreSQL."""
        for name in sorted(self.processes, key=lambda n: n != "nginx"):
            _stop(self.processes[name].process)
        folder = self.state / "postgres"
        if (folder / "data" / "postmaster.pid").exists():
            subprocess.run(["sh", str(POSTGRES_SCRIPT), "stop", str(folder)], capture_output=True, timeout=120)


def render_config(template: str, **fields: str) -> str:
    """deploy/nginx.conf with its {{name}} fields filled in; a field left over is a mistake, not a default."""
    left = sorted(set(FIELD.findall(template)) - set(fields))
    if left:
        raise ValueError(f"nginx.conf: no value for {', '.join('{{' + name + '}}' for name in left)}")
    return FIELD.sub(lambda m: fields[m.group(1)], template)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _interrupt(*_) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the set as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the set, serve until Ctrl-C, then stop it all")
    up.add_argument("--port", type=int, default=8080, help="nginx's port on 127.0.0.1 (default 8080)")
    up.add_argument("--chat", type=int, default=2, help="how many chat servers (default 2)")
    up.add_argument("--state", type=Path, default=None, help="folder for logs, the database and nginx's files "
                    "(default: a new temporary folder, removed at the end)")
    args = parser.parse_args(argv)
    state = args.state or Path(tempfile.mkdtemp(prefix="assistant-replicas-"))
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Replicas(state, port=args.port, chat=args.chat,
                      password=os.environ.get("ASSISTANT_OPERATOR_PASSWORD", "")) as replicas:
            print(f"serving {replicas.url} (chat page), {replicas.url}/v1/ask and {replicas.url}/docs (API); "
                  f"logs in {state}; Ctrl-C stops everything", flush=True)
            while all(p.process.poll() is None for p in replicas.processes.values()):
                time.sleep(1)
            gone = [p.name for p in replicas.processes.values() if p.process.poll() is not None]
            print(f"stopped: {', '.join(gone)} exited", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    except ReplicasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.state is None:
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

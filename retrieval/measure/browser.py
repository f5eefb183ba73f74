"""Helpers for driving the real Streamlit server with Debian's Chromium through Playwright.

`streamlit_server()` starts `streamlit run app.py` on a free port with its own feedback database and operator
password, and stops it whatever happens; `launch_chromium()` starts the system Chromium with flags that keep
it off the (closed) network; `ask()` and `click()` drive the chat page and wait for Streamlit to finish the
rerun they cause. `time_to_first_answer()` measures one question end to end, for a benchmark.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from retrieval.settings import ROOT

CHROMIUM = "/usr/bin/chromium"
# The project's virtualenv when there is one, so a caller running another interpreter still gets streamlit.
PYTHON = ROOT / ".venv" / "bin" / "python" if (ROOT / ".venv" / "bin" / "python").exists() else Path(sys.executable)
# --disable-background-networking and friends: without them Chromium keeps trying to reach Google's
# servers, which floods a closed network and slows everything else down.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}

# Seconds until /_stcore/health answers "ok": the server loads the model (~10 s idle) before it answers, and,
# if `make prepare` was not run after a change to the knowledge base, rebuilds the index (minutes on a busy
# 2-core machine).
SERVER_START_TIMEOUT = 300.0
APP_READY_TIMEOUT = 120.0
ANSWER_TIMEOUT = 60.0        # one question, on a loaded machine

CHAT_INPUT = '[data-testid="stChatInputTextArea"]'
CHAT_MESSAGE = '[data-testid="stChatMessage"]'
ASSISTANT_MESSAGE = f'{CHAT_MESSAGE}:has([data-testid="stChatMessageAvatarAssistant"])'
USER_MESSAGE = f'{CHAT_MESSAGE}:has([data-testid="stChatMessageAvatarUser"])'
STATUS = '[data-testid="stStatusWidget"]'   # shows "Stop" while the script runs
STALE = '[data-stale="true"]'                  # elements from the previous run, not yet redrawn
BLOCK = '[data-testid="stVerticalBlock"]'
PROGRESS = re.compile(r"第 (\d+) 步，共 (\d+) 步|Step (\d+) of (\d+)")
COUNT_GREW = "([selector, n]) => document.querySelectorAll(selector).length > n"
# Screenshots for the README are written only when this names a folder (`make screenshots` sets it), so that
# `make test` leaves the work tree as it found it.
SCREENSHOTS_ENV = "ASSISTANT_SCREENSHOTS"


class ServerError(RuntimeError):
    """The server died or never became healthy; the message carries its output."""


class Server(NamedTuple):
    """A running server. (A NamedTuple: a plain record.)"""

    url: str
    feedback_db: Path
    password: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return _tail(self.log)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-limit:]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM the server if the test process dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def streamlit_server(password: str = "operator-test-password", timeout: float = SERVER_START_TIMEOUT,
                     env: dict[str, str] | None = None, entry: str = "chat_server.py", root: Path = ROOT,
                     options: tuple[str, ...] = ()) -> Iterator[Server]:
    """The real chat server (chat_server.py: app.py with the assistant loaded at start-up; the real model and
    index, the production settings of .streamlit/config.toml) on a free port.

    `entry`, `root` and `options` (more `--section.option value` flags) serve another script or another copy
    of the project, for a before/after comparison. The feedback database is a fresh temporary file and the
    operator password is `password`. Yields once
    http://127.0.0.1:<port>/_stcore/health answers "ok"; raises ServerError with the server's output if it
    exits first or is not healthy within `timeout` seconds. The server is stopped (terminate, then kill)
    on the way out, whatever happened.
    """
    with tempfile.TemporaryDirectory(prefix="assistant-browser-") as tmp:
        tmp_path = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        feedback_db = tmp_path / "feedback.sqlite3"
        log = tmp_path / "server.log"
        child_env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "ASSISTANT_FEEDBACK_DB": str(feedback_db),
            "ASSISTANT_OPERATOR_PASSWORD": password,
            **(env or {}),
        }
        command = [
            str(PYTHON), "-m", "streamlit", "run", entry,
            "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
            "--browser.gatherUsageStats", "false", *options,
        ]
        with open(log, "wb") as out:
            process = subprocess.Popen(command, cwd=root, env=child_env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL,
                                       preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        try:
            deadline = time.monotonic() + timeout
            while not _healthy(url):
                if process.poll() is not None:
                    raise ServerError(f"streamlit exited with code {process.returncode}:\n{_tail(log)}")
                if time.monotonic() > deadline:
                    raise ServerError(f"streamlit not healthy after {timeout:.0f} s:\n{_tail(log)}")
                time.sleep(0.5)
            yield Server(url=url, feedback_db=feedback_db, password=password, process=process, log=log)
        finally:
            _stop(process)


def launch_chromium(playwright, **kwargs):
    """Debian's Chromium (Playwright's own download does not work here), headless and quiet."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"no Chromium at {CHROMIUM}: run `make browser` (Debian's chromium and fonts-noto-cjk)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, **kwargs)


# -- knowing when Streamlit is done ---------------------------------------------------------------------
class ScriptRuns:
    """Counts the script runs the server reports finished, read from the page's websocket.

    Every click or question makes Streamlit rerun the script; the server ends each run with a `script_finished`
    ForwardMsg. Counting those is exact, where watching the DOM races: on a busy machine a rerun can start
    well after the click, and the "running" indicator only shows after a delay. Runs cut short by st.rerun()
    are not counted (the run that follows is).
    """

    def __init__(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._parse = ForwardMsg.FromString
        self._rerun = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")
        self.finished = 0

    def attach(self, page) -> None:
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        if isinstance(payload, str) or len(payload) > 4096:
            return  # script_finished is a few bytes; big frames are page content, not worth parsing
        try:
            message = self._parse(payload)
        except Exception:  # not a ForwardMsg: nothing to count
            return
        if message.WhichOneof("type") == "script_finished" and message.script_finished != self._rerun:
            self.finished += 1


_RUNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def runs(page) -> ScriptRuns:
    """The page's run counter, attached on first use (so before the page opens its websocket)."""
    if page not in _RUNS:
        _RUNS[page] = tracker = ScriptRuns()
        tracker.attach(page)
    return _RUNS[page]


# -- driving the page (sync API) ----------------------------------------------------------------------
# Elements left from the previous run are marked stale until redrawn; the status widget says "Stop" while
# the script runs. Once the server has finished the run, these tell whether the browser has caught up.
BUSY_SCRIPT = f"""() => document.querySelectorAll('{STALE}').length > 0
    || Array.from(document.querySelectorAll('{STATUS}')).some(e => /running|stop/i.test(e.textContent))"""


def wait_idle(page, timeout: float = ANSWER_TIMEOUT, settle: float = 0.3) -> None:
    """Wait until the page shows no running indicator and no stale elements, steadily for `settle` seconds."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while True:
        now = time.monotonic()
        if page.evaluate(BUSY_SCRIPT):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= settle:
            return
        if now > deadline:
            raise TimeoutError(f"Streamlit still running after {timeout:.0f} s")
        page.wait_for_timeout(50)


def wait_for_run(page, after: int, timeout: float = ANSWER_TIMEOUT) -> None:
    """Wait until a script run beyond the `after`-th has finished on the server and the page has drawn it."""
    deadline = time.monotonic() + timeout
    tracker = runs(page)
    while tracker.finished <= after:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no script run finished within {timeout:.0f} s")
        page.wait_for_timeout(50)
    wait_idle(page, timeout=max(1.0, deadline - time.monotonic()))


SLOW_START = ("the chat page's first run did not finish; a server started without chat_server.py loads the model "
              "and the index at the first visit, and if the knowledge base or retrieval/ changed since "
              "`make prepare` the index is rebuilt first, which takes minutes on a busy machine: run `make prepare` "
              "before the browser tests")


def open_chat(page, url: str, timeout: float = APP_READY_TIMEOUT) -> None:
    """Load the chat page and wait until its first run is done (the model is loaded) and the input is ready."""
    before = runs(page).finished
    page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
    try:
        wait_for_run(page, before, timeout=timeout)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {SLOW_START}") from None
    page.locator(CHAT_INPUT).wait_for(state="visible", timeout=timeout * 1000)


def assistant_messages(page):
    return page.locator(ASSISTANT_MESSAGE)


def user_messages(page):
    return page.locator(USER_MESSAGE)


def content(message):
    """A chat message without its avatar (whose icon name, such as "face", is text too)."""
    return message.locator('[data-testid="stChatMessageContent"]')


def ask(page, text: str, timeout: float = ANSWER_TIMEOUT):
    """Type `text` into the chat input, press Enter, wait for the answer to be drawn; returns its chat message."""
    before = assistant_messages(page).count()
    box = page.locator(CHAT_INPUT)
    box.fill(text)
    runs_before = runs(page).finished
    box.press("Enter")
    wait_for_run(page, runs_before, timeout=timeout)
    page.wait_for_function(COUNT_GREW, arg=[ASSISTANT_MESSAGE, before], timeout=10_000)
    return assistant_messages(page).nth(before)


def button(page, text: str):
    """The buttons (within a page or a locator) whose label contains `text`; labels may carry an emoji."""
    return page.locator("button").filter(has_text=text)


def after_run(page, action, timeout: float = ANSWER_TIMEOUT) -> None:
    """Do `action()` (a click, a key press) and wait for the rerun it causes to finish and be drawn."""
    before = runs(page).finished
    action()
    wait_for_run(page, before, timeout=timeout)


def click(page, text: str, timeout: float = ANSWER_TIMEOUT, index: int = -1) -> None:
    """Click the button labelled `text` (the last one by default: the newest answer's) and wait for the rerun."""
    matches = button(page, text)
    target = matches.last if index == -1 else matches.nth(index)
    after_run(page, lambda: target.click(timeout=timeout * 1000), timeout=timeout)


WALKTHROUGH = ".st-key-walkbox"   # the walkthrough's bordered box (a container keyed "walkbox")


def walkthrough(page):
    """The bordered box of the walkthrough."""
    return page.locator(WALKTHROUGH)


def progress(page) -> tuple[int, int]:
    """(step, total) from the walkthrough's 「第 N 步，共 M 步」 / "Step N of M"."""
    match = PROGRESS.search(walkthrough(page).inner_text())
    if not match:
        raise AssertionError("no walkthrough progress on the page")
    numbers = [int(n) for n in match.groups() if n]
    return numbers[0], numbers[1]


IN_VIEW = """e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.top < window.innerHeight; }"""


def wait_in_view(locator, timeout: float = 10.0) -> None:
    """Wait until the top of `locator` is inside the viewport (the page scrolls after drawing an answer)."""
    deadline = time.monotonic() + timeout
    while not locator.evaluate(IN_VIEW):
        if time.monotonic() > deadline:
            box = locator.evaluate("e => e.getBoundingClientRect().top")
            raise AssertionError(f"its top is at {box:.0f} px, outside the viewport")
        locator.page.wait_for_timeout(50)


def scroll_to_top(page) -> None:
    """Scroll the conversation back to its start, as a user re-reading it would."""
    page.locator(CHAT_MESSAGE).first.evaluate(SCROLL_TO_TOP, 0)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(200)


def body_text(page) -> str:
    """Everything the page shows, as text (sidebar included)."""
    return page.locator("body").inner_text()


# A user's scroll (a wheel event first, as a real one has) also tells the page to stop holding a new answer in view.
SCROLL_TO_TOP = """(e, offset) => {
    document.dispatchEvent(new WheelEvent('wheel'));
    e.scrollIntoView({block: 'start'});
    let box = e.parentElement;
    while (box && !(box.scrollHeight > box.clientHeight && /auto|scroll/.test(getComputedStyle(box).overflowY)))
        box = box.parentElement;
    (box || window).scrollBy(0, -offset);
}"""


def screenshot(page, name: str, top=None, offset: int = 70) -> Path | None:
    """Save <ASSISTANT_SCREENSHOTS>/<name> (the viewport) when that variable names a folder, else nothing;
    `top`, if given, is scrolled to just below the header."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    if not folder:
        return None
    page.mouse.move(0, 0)  # no hover highlight on the button clicked last
    if top is not None:
        top.evaluate(SCROLL_TO_TOP, offset)
    page.wait_for_timeout(300)
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), animations="disabled")
    return path


def time_to_first_answer(url: str, question: str, timeout: float = APP_READY_TIMEOUT) -> float:
    """Seconds from pressing Enter to the answer's chat message appearing, in a fresh Chromium on `url`.

    The page is loaded first (which loads the model on a fresh server), so only the question is timed.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport=LAPTOP)
            open_chat(page, url, timeout=timeout)
            box = page.locator(CHAT_INPUT)
            box.fill(question)
            start = time.perf_counter()
            box.press("Enter")
            page.wait_for_function(COUNT_GREW, arg=[ASSISTANT_MESSAGE, 0], timeout=timeout * 1000, polling=20)
            return time.perf_counter() - start
        finally:
            browser.close()


# -- the same, for Playwright's async API (the load test) -----------------------------------------------
async def async_wait_idle(page, timeout: float = ANSWER_TIMEOUT, settle: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    quiet_since = None
    while True:
        now = time.monotonic()
        if await page.evaluate(BUSY_SCRIPT):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= settle:
            return
        if now > deadline:
            raise TimeoutError(f"Streamlit still running after {timeout:.0f} s")
        await page.wait_for_timeout(50)


async def async_wait_for_run(page, after: int, timeout: float = ANSWER_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    tracker = runs(page)
    while tracker.finished <= after:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no script run finished within {timeout:.0f} s")
        await page.wait_for_timeout(50)
    await async_wait_idle(page, timeout=max(1.0, deadline - time.monotonic()))


async def async_open_chat(page, url: str, timeout: float = APP_READY_TIMEOUT) -> None:
    before = runs(page).finished
    await page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
    try:
        await async_wait_for_run(page, before, timeout=timeout)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {SLOW_START}") from None
    await page.locator(CHAT_INPUT).wait_for(state="visible", timeout=timeout * 1000)


async def async_ask(page, text: str, timeout: float = ANSWER_TIMEOUT) -> float:
    """Ask `text` and wait until the answer is drawn; returns the seconds from Enter until it appeared."""
    before = await page.locator(ASSISTANT_MESSAGE).count()
    box = page.locator(CHAT_INPUT)
    await box.fill(text)
    runs_before = runs(page).finished
    start = time.perf_counter()
    await box.press("Enter")
    await page.wait_for_function(COUNT_GREW, arg=[ASSISTANT_MESSAGE, before], timeout=timeout * 1000, polling=50)
    elapsed = time.perf_counter() - start
    await async_wait_for_run(page, runs_before, timeout=timeout)
    return elapsed


async def async_click(page, text: str, timeout: float = ANSWER_TIMEOUT) -> None:
    before = runs(page).finished
    await button(page, text).last.click(timeout=timeout * 1000)
    await async_wait_for_run(page, before, timeout=timeout)

"""A headless Streamlit client: speaks the page's own websocket protocol (Streamlit's protobuf messages).

A browser costs a core of its own; this costs a few milliseconds per answer, so a load test of it measures the
server. `Session` opens `/_stcore/stream`, asks for a script run the way the browser does (a `BackMsg` with a
`ClientState`), and keeps a model of the page from the `ForwardMsg`s it gets back: every element by its delta
path, with the run and fragment that drew it. At the end of each run it drops what that run did not redraw,
as the browser does, so `chat()` is what a user would see.

    async with Session.open("http://127.0.0.1:8501") as s:
        await s.ask("GV怎么充值")
        print(s.chat()[-1].text)

Streamlit is imported lazily: retrieval/ never imports it at module level.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

RUN_TIMEOUT = 60.0  # seconds for one script run, on a loaded machine

# Element fields that carry text a user reads, by element type.
_TEXT_FIELDS = {"markdown": "body", "alert": "body", "heading": "body", "text": "body", "code": "code_text",
                "button": "label", "toast": "body", "html": "body", "caption": "body"}


# CommonMark lets a backslash escape any ASCII punctuation character.
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


class ClientError(RuntimeError):
    """The server closed the connection, reported an exception, or did not finish a run in time."""


@dataclass
class Node:
    """One element or block of the page, where it is and which run drew it."""

    path: tuple[int, ...]
    kind: str                 # "block:<type>" or the element's type ("markdown", "button", ...)
    proto: Any                # the Element or Block message
    run: str                  # script run id that drew it
    fragment: str = ""        # the fragment it belongs to ("" for the main script)

    @property
    def text(self) -> str:
        """The text a reader sees, roughly: Markdown's backslash escapes (`AT\\&T`) are undone."""
        name = _TEXT_FIELDS.get(self.kind)
        if not name:
            return ""
        body = str(getattr(getattr(self.proto, self.kind), name))
        return _ESCAPED.sub(r"\1", body) if self.kind == "markdown" else body

    @property
    def widget_id(self) -> str:
        inner = getattr(self.proto, self.kind, None) if not self.kind.startswith("block:") else None
        return str(getattr(inner, "id", "") or "")


@dataclass
class ChatMessage:
    role: str                 # the chat_message's name: "user" or "assistant"
    text: str                 # every text in it, in page order, one per line
    path: tuple[int, ...]


@dataclass
class Session:
    """One browser-less user: one websocket, one Streamlit session, one page."""

    url: str
    locale: str = "zh-CN"
    query_string: str = ""
    ws: Any = None
    nodes: dict[tuple[int, ...], Node] = field(default_factory=dict)
    session_id: str = ""
    page_script_hash: str = ""
    exceptions: list[str] = field(default_factory=list)
    finished_runs: int = 0
    _cache: dict[str, Any] = field(default_factory=dict)        # cacheable messages by hash, as the browser keeps
    _run: str = ""
    _fragments: tuple[str, ...] = ()
    _finished: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task | None = None
    _closed: BaseException | None = None

    # -- connecting ---------------------------------------------------------------------------------
    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str, locale: str = "zh-CN", query_string: str = "",
                   timeout: float = RUN_TIMEOUT, headers: dict[str, str] | None = None) -> AsyncIterator[Session]:
        """Connect, run the page once (as loading it in a browser does), and close on the way out. `headers` go
        with the websocket's opening request (a proxy's sticky-session cookie, say)."""
        from websockets.asyncio.client import connect

        session = cls(url.rstrip("/"), locale, query_string)
        ws_url = session.url.replace("http://", "ws://").replace("https://", "wss://") + "/_stcore/stream"
        async with connect(ws_url, subprotocols=["streamlit"], max_size=None, compression=None,
                           open_timeout=timeout, ping_interval=None, additional_headers=headers) as ws:
            session.ws = ws
            session._reader = asyncio.create_task(session._read())
            try:
                await session.rerun(timeout=timeout)
                yield session
            finally:
                session._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await session._reader

    # -- the page ------------------------------------------------------------------------------------
    def elements(self, kind: str | None = None, under: tuple[int, ...] = ()) -> list[Node]:
        """Elements in page order, optionally of one type and inside one block."""
        found = [n for p, n in self.nodes.items() if p[:len(under)] == under and not n.kind.startswith("block:")]
        return sorted((n for n in found if kind is None or n.kind == kind), key=lambda n: n.path)

    def chat(self) -> list[ChatMessage]:
        """The chat messages shown, in page order."""
        out = []
        for node in sorted(self.nodes.values(), key=lambda n: n.path):
            if node.kind == "block:chat_message":
                texts = [e.text for e in self.elements(under=node.path) if e.kind in ("markdown", "alert", "text")]
                out.append(ChatMessage(node.proto.chat_message.name, "\n".join(t for t in texts if t), node.path))
        return out

    def text(self) -> str:
        return "\n".join(n.text for n in self.elements() if n.text)

    def widget(self, kind: str, label: str | None = None) -> Node:
        """The last widget of `kind` whose label contains `label` (the newest answer's, as a user would pick)."""
        matches = [n for n in self.elements(kind)
                   if label is None or label in str(getattr(getattr(n.proto, kind), "label", ""))]
        if not matches:
            shown = [str(getattr(getattr(n.proto, kind), "label", "")) for n in self.elements(kind)]
            raise ClientError(f"no {kind} labelled {label!r}; there are {shown}")
        return matches[-1]

    # -- acting --------------------------------------------------------------------------------------
    async def ask(self, text: str, timeout: float = RUN_TIMEOUT) -> float:
        """Type `text` into the chat input and press Enter; returns seconds until the run that answers it ended."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        box = self.widget("chat_input")
        state = WidgetState(id=box.widget_id)
        state.chat_input_value.data = text
        return await self.rerun([state], fragment=box.fragment, timeout=timeout)

    async def click(self, label: str, timeout: float = RUN_TIMEOUT) -> float:
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        button = self.widget("button", label)
        return await self.rerun([WidgetState(id=button.widget_id, trigger_value=True)], fragment=button.fragment,
                                timeout=timeout)

    async def rerun(self, widgets: list | None = None, fragment: str = "", timeout: float = RUN_TIMEOUT) -> float:
        """Send one rerun request (with these widget states) and wait until its run has finished."""
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query_string
        state.page_script_hash = self.page_script_hash
        state.fragment_id = fragment
        state.context_info.locale = self.locale
        state.context_info.timezone = "UTC"
        state.context_info.url = f"{self.url}/?{self.query_string}" if self.query_string else self.url + "/"
        state.cached_message_hashes.extend(self._cache)
        for widget in widgets or []:
            state.widget_states.widgets.append(widget)
        before = self.finished_runs
        self._finished.clear()
        start = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        deadline = start + timeout
        while self.finished_runs <= before:
            if self._closed is not None:
                raise ClientError(f"connection closed: {self._closed}")
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise ClientError(f"no script run finished within {timeout:.0f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), remaining)
            self._finished.clear()
        if self.exceptions:
            raise ClientError("the page raised: " + " | ".join(self.exceptions))
        return time.perf_counter() - start

    # -- reading -------------------------------------------------------------------------------------
    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        rerun_early = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")
        try:
            async for frame in self.ws:
                if isinstance(frame, str):
                    continue
                msg = ForwardMsg.FromString(frame)
                if msg.WhichOneof("type") == "ref_hash":
                    cached = self._cache.get(msg.ref_hash)
                    if cached is None:
                        raise ClientError(f"server referred to a message this client never cached: {msg.ref_hash}")
                    path = tuple(msg.metadata.delta_path)
                    msg = ForwardMsg()
                    msg.CopyFrom(cached)
                    msg.metadata.delta_path[:] = path
                elif msg.metadata.cacheable:
                    self._cache[msg.hash] = msg
                self._handle(msg, rerun_early)
        except Exception as exc:  # closed, or a protocol surprise: every waiter must hear of it
            self._closed = exc
        else:
            self._closed = ClientError("server closed the connection")
        self._finished.set()

    def _handle(self, msg, rerun_early: int) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self._run = msg.metadata.run.script_run_id or msg.new_session.script_run_id
            self._fragments = tuple(msg.metadata.run.fragment_ids)
            self.page_script_hash = msg.new_session.page_script_hash or self.page_script_hash
            if msg.new_session.initialize.session_id:
                self.session_id = msg.new_session.initialize.session_id
            self.exceptions.clear()
        elif kind == "delta":
            self._delta(msg)
        elif kind == "script_finished":
            if msg.script_finished == rerun_early:
                return
            self._drop_stale()
            self.finished_runs += 1
            self._finished.set()
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string

    def _delta(self, msg) -> None:
        path = tuple(msg.metadata.delta_path)
        delta = msg.delta
        which = delta.WhichOneof("type")
        if which == "new_element":
            element = delta.new_element
            kind = element.WhichOneof("type") or "empty"
            if kind == "exception":
                self.exceptions.append(f"{element.exception.type}: {element.exception.message}")
            # An element replaces whatever was at its path, children included.
            for old in [p for p in self.nodes if p[:len(path)] == path and p != path]:
                del self.nodes[old]
            self.nodes[path] = Node(path, kind, element, self._run, delta.fragment_id)
        elif which == "add_block":
            block = delta.add_block
            self.nodes[path] = Node(path, f"block:{block.WhichOneof('type') or 'vertical'}", block, self._run,
                                    delta.fragment_id)

    def _drop_stale(self) -> None:
        """What the run just finished did not draw goes, as in the browser: everything for a full run, only
        the rerun fragments' own elements for a fragment run."""
        def stale(node: Node) -> bool:
            if node.run == self._run:
                return False
            return not self._fragments or node.fragment in self._fragments

        gone = [p for p, n in self.nodes.items() if stale(n)]
        for path in gone:
            self.nodes.pop(path, None)
        if gone:  # and whatever sat inside a block that went
            roots = sorted(gone, key=len)
            for path in [p for p in self.nodes if any(p[:len(r)] == r for r in roots)]:
                del self.nodes[path]


# -- CPU of a process, from /proc ---------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` and its finished threads, in seconds (10 ms resolution)."""
    import os

    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
    return ticks / os.sysconf("SC_CLK_TCK")

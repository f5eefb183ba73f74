"""`streamlit run chat_server.py`: the chat page (app.py) with the assistant loaded when the server starts.

Plain `streamlit run app.py` loads the model and the index at the first visit, so the first visitor of a fresh
server waited 15-18 s. Here Streamlit's own ASGI app loads them in its start-up hook, before the server
answers its health check; a knowledge base or model that cannot load is left for the page to report.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

import streamlit as st

from chat_resources import get_assistant

log = logging.getLogger(__name__)


@asynccontextmanager
async def load_first(_app):
    try:
        await asyncio.to_thread(get_assistant)
    except Exception:  # the page shows the reason to whoever visits; the server must still start
        log.exception("the assistant could not be loaded at start-up")
    yield


app = st.App("app.py", lifespan=load_first)

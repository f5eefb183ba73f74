"""The HTTP API: POST /v1/ask answers as `ask --jsonl` does; POST /v1/report keeps a mistake report for the
operator's inbox, as the page's "Report a mistake" does; GET /healthz, GET /v1/providers, and /docs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from retrieval.api.request import (
    REPORT_MAX_CHARS,
    ReportRequest,
    RequestError,
    answer,
    read_report,
    read_request,
    size_limit,
)
from retrieval.api.schema import (
    ERRORS,
    REPORT_ERRORS,
    AskResponse,
    Health,
    ProviderList,
    ReportResponse,
    report_schema,
    request_schema,
)
from retrieval.knowledge import KnowledgeBase
from retrieval.serving.answer import Answer
from retrieval.settings import Settings
from retrieval.store import FeedbackStore, StoreError, open_store

log = logging.getLogger(__name__)

# Questions answered at once. The engine is CPU-bound and the machine has 2 cores: more threads only queue
# inside OpenVINO and hold a per-thread infer request each; fewer leave a core idle while one thread logs.
WORKERS = 4
SESSION = "api"  # the store's session id for requests that bring none


# -- the application ------------------------------------------------------------------------
async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it is known to pass `limit` bytes: never read further."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise RequestError(f"too large: more than {limit} bytes", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"too large: more than {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def log_answer(store: FeedbackStore | None, reply: Answer, session_id: str | None) -> None:
    """Keep the question as the page does; an answer is never lost because the store is not there (the store
    itself holds writes in memory while its database is away)."""
    if store is None:
        return
    top = reply.hits[0] if reply.hits else None
    try:
        store.log_interaction(session_id=session_id or SESSION, question=reply.question, language=reply.language,
                              provider=reply.provider, kind=reply.kind.value, entry_id=reply.entry_id,
                              topic=reply.topic, answered=reply.answered, score=top.score if top else None,
                              offered=reply.hits)
    except (StoreError, ValueError) as exc:
        log.warning("the question was answered but not stored: %s", exc)


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _handle_errors(app: FastAPI) -> None:
    """Every error a client sees is {"error": "..."}: ours, FastAPI's and Starlette's alike."""
    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "; ".join(str(e.get("msg", e)) for e in exc.errors()) or "invalid request")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:  # Starlette logs the traceback
        return _error(500, "internal error")


def create_app(assistant, store: FeedbackStore | None = None, workers: int = WORKERS) -> FastAPI:
    """The API over a loaded `assistant`; every question is logged to `store` when there is one."""
    kb: KnowledgeBase = assistant.kb
    limit, report_limit = size_limit(assistant.max_chars), size_limit(REPORT_MAX_CHARS)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.limiter = anyio.CapacityLimiter(workers)
        yield

    app = FastAPIOffline(
        title="US phone top-up helper", version="1",
        description=("Answers questions about topping up US phone numbers, in Chinese or English, word for word "
                     "from a checked knowledge base. `POST /v1/ask` takes and returns the same JSON as "
                     "`python -m retrieval ask --jsonl`; pass the previous answer's `provider` and `topic` "
                     "back with the next question to keep the conversation's context. Every error is a JSON "
                     "object `{\"error\": \"...\"}`."),
        lifespan=lifespan)
    _handle_errors(app)

    def work(request) -> dict:
        reply = answer(assistant, request)
        log_answer(store, reply, request.session_id)
        return reply.to_json()

    @app.post("/v1/ask", response_model=None, summary="Answer one question", operation_id="ask",
              responses={200: {"model": AskResponse, "description": "The answer, an ask-back or a decline"},
                         **ERRORS},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": request_schema(kb, assistant.max_chars)}}}})
    async def ask(request: Request) -> JSONResponse:
        question = read_request(await read_body(request, limit), kb, assistant.max_chars)
        return JSONResponse(await anyio.to_thread.run_sync(work, question, limiter=request.app.state.limiter))

    def keep(report: ReportRequest) -> JSONResponse:
        if store is None:
            return _error(503, "this server keeps no reports: it runs without a store")
        try:
            kept = store.report_mistake(session_id=report.session_id or SESSION, entry_id=report.entry_id,
                                        text=report.text)
        except ValueError as exc:  # parse_report's checks are the store's: not expected, but never a 500
            return _error(422, str(exc))
        except StoreError as exc:  # the store holds writes in memory while its database is away: rare
            log.warning("a mistake report was not stored: %s", exc)
            return _error(503, "the report could not be kept just now: please send it again later")
        return JSONResponse({"status": "queued" if store.problem else "saved", "entry_id": report.entry_id,
                             "text": kept})

    @app.post("/v1/report", response_model=None, summary="Report a mistake in an answer", operation_id="report",
              responses={200: {"model": ReportResponse, "description": "Kept for the operator's inbox"},
                         **REPORT_ERRORS},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": report_schema(kb)}}}})
    async def report(request: Request) -> JSONResponse:
        body = read_report(await read_body(request, report_limit), kb)
        return await anyio.to_thread.run_sync(keep, body, limiter=request.app.state.limiter)

    @app.get("/healthz", response_model=Health, summary="200 once the assistant is loaded", operation_id="health")
    async def healthz() -> dict:
        stored = store is not None and store.problem is None
        return {"status": "ok", "entries": len(kb.entries), "store": "ok" if stored else "unavailable"}

    providers = {"providers": [{"id": p.id, "name": dict(p.name), "support_url": p.support_url}
                               for p in kb.providers.values()]}

    @app.get("/v1/providers", response_model=ProviderList, summary="The provider ids `provider` accepts",
             operation_id="providers")
    async def list_providers() -> dict:
        return providers

    return app


def serve(settings: Settings, host: str, port: int, progress: Callable[[str], None]) -> None:
    """Load the assistant, then serve it until interrupted: the port opens only once answers can be given."""
    import uvicorn

    from retrieval.loading import load_assistant

    assistant = load_assistant(settings, progress=progress)
    store = open_store(settings)  # the page's store; it never fails to open, it waits for its database
    if store.problem:
        progress(f"warning: questions are kept in memory until the database can be written: {store.problem}")
    progress(f"API docs at http://{host}:{port}/docs")
    try:
        uvicorn.run(create_app(assistant, store), host=host, port=port, access_log=False, log_level="info")
    finally:
        store.close()

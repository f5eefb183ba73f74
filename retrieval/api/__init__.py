"""The HTTP edge: `python -m retrieval serve`, and the question request it shares with `ask --jsonl`.

`retrieval.api.request` needs nothing beyond the standard library, so the command line can use it without
loading the web stack; `retrieval.api.app` is the FastAPI application.
"""

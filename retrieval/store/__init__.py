"""Store: what is kept of questions, feedback and conversations: SQLite by default, PostgreSQL when configured.

`open_store(settings)` is the one way in for the pages and the API; `queries` has the reports (pandas).
"""

from retrieval.store.database import StoreError, StoreUnavailable
from retrieval.store.feedback import FeedbackError, FeedbackStore, open_store

__all__ = ["FeedbackError", "FeedbackStore", "StoreError", "StoreUnavailable", "open_store"]

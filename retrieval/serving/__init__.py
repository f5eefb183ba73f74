"""Serving: everything that answers a question, from the words typed to the Markdown shown."""

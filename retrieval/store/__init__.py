"""Store: what is kept of questions and feedback."""

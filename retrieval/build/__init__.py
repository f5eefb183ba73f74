"""Build: what makes the model and the index once, before anything is served."""

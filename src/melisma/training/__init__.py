"""Training code, kept apart from inference (each stage has its own module here)."""

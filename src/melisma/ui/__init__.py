"""``melisma ui``: the Gradio web UI (needs the ``ui`` extra)."""

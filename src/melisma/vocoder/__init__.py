"""vocoder stage."""

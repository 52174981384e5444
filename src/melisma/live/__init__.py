"""Real-time conversion: the streaming engine (``engine``) and the sound-card loop (``device``)."""

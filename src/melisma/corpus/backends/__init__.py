"""Offline text-to-speech backends. Each returns ``(audio float32 (n,), sample_rate)`` for a voice spec.

A backend module exposes ``synthesize(spec: VoiceSpec, text: str, rng) -> (audio, sr)`` and
``check_available()`` which raises MissingDependencyError with an install line when its tool is absent.
"""

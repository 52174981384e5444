"""One-shot conversion: sing in any voice from one or a few reference clips, no training (VQMIVC-style).

``reference_voice(refs)`` -> a ``ReferenceVoice`` with the ``convert`` API of a trained ``Voice``;
``load_oneshot_model()`` -> the shipped model (``embed(refs)`` -> ``SpeakerEmbedding``, ``voice({...})``);
saved embeddings: ``save_embedding`` / ``load_embedding`` / ``speaker_voice("a:0.6,b:0.4")``.
The parts are in ``melisma.oneshot.model``, the recipe in ``melisma.training.oneshot``.
"""

from __future__ import annotations

from melisma.oneshot.voice import (
    OneShotModel,
    ReferenceVoice,
    SpeakerEmbedding,
    load_embedding,
    load_oneshot_model,
    reference_voice,
    save_embedding,
    speaker_voice,
)

__all__ = ["OneShotModel", "ReferenceVoice", "SpeakerEmbedding", "load_embedding", "load_oneshot_model",
           "reference_voice", "save_embedding", "speaker_voice"]

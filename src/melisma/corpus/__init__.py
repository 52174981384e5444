"""Offline voice corpus: many synthetic speakers speaking and singing the same texts and melodies.

    from melisma.corpus import load_corpus, split_clips
    clips = load_corpus("data/corpus-starter")      # list[ClipRecord]: the one reader, version checked
    train, held_out = split_clips(clips)
    audio, f0 = clips[0].load_audio(), clips[0].load_f0()   # 44.1 kHz; (n // 512 + 1,) Hz
    clips[0].phones, clips[0].phone_ends, clips[0].shared_phones  # front-end phones, their ends (s), shared set

Build one with ``melisma corpus build -o DIR`` or ``build_corpus``. Training recipes read theirs with
``trainable_clips``, which refuses held-out voices.
"""

from melisma.corpus.heldout import (
    HELD_OUT_VOICES,
    is_held_out,
    near_held_out,
    refuse_held_out,
    split_clips,
    split_voices,
    trainable_clips,
)
from melisma.corpus.manifest import FORMAT, FORMAT_VERSION, ClipRecord, load_corpus, write_manifest

__all__ = ["FORMAT", "FORMAT_VERSION", "HELD_OUT_VOICES", "ClipRecord", "build_corpus", "is_held_out",
           "load_corpus", "near_held_out", "refuse_held_out", "split_clips", "split_voices", "trainable_clips",
           "write_manifest"]


def build_corpus(*args, **kwargs):
    """See ``melisma.corpus.builder.build_corpus`` (imported lazily: it pulls the TTS backends)."""
    from melisma.corpus import builder

    return builder.build_corpus(*args, **kwargs)

"""Singer stage (CoMoSVC scheme): content + pitch + loudness + singer -> mel, by an EDM teacher distilled into a
one-step consistency student; both are WaveNet denoisers over normalised mel.

- ``model``: condition encoder and WaveNet denoiser (``SingerConfig``, ``SingerNet``)
- ``edm``: EDM preconditioning, training noise and loss, Karras sigmas, Euler/Heun teacher sampling
- ``consistency``: consistency distillation and one-/multi-step student sampling
- ``voicepack``: the single-file voice pack (safetensors + JSON header)
- ``convert``: ``load_voice`` and ``Voice.convert`` (transpose, auto-transpose, singer mixes, long audio)
- ``chunking``: cuts at silences and crossfaded joins; ``cover``: separate, convert, remix
Training lives in ``melisma.training.singer``.
"""

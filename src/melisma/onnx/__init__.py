"""ONNX path: ``melisma export VOICE -o DIR`` writes a voice's three networks as ONNX graphs and a stamped
manifest; ``melisma convert --engine onnx -v DIR`` runs the same pipeline on onnxruntime without importing torch.

- ``export``: ``export_voice(voice, out_dir, singer=, quantize=)`` (torch; the only module here that imports it)
- ``graphs``: the torch wrappers exported (content encoder, one-step student, the vocoder's filter network)
- ``runtime``: ``load_onnx_voice(dir)`` -> ``OnnxVoice.convert_detailed(...)`` (numpy + onnxruntime only)
- ``synthesis``: the builtin vocoder's source, filters and STFT in numpy (twins of the torch functions)
"""

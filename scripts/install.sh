#!/usr/bin/env bash
# Idempotent set-up of fourd on a fresh Debian/Ubuntu machine (CPU or GPU):
#   1. system packages the GL and video paths need (only when root and missing),
#   2. a virtual environment in .venv,
#   3. torch (the CPU wheel pinned below unless FOURD_TORCH says otherwise), then fourd itself.
# Re-running does only what is missing. Usage: bash scripts/install.sh [--dev] [--extras gen,dist,rig]
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
for arg in "$@"; do
  case "$arg" in
    --dev) extras="${extras:+$extras,}dev" ;;
    --extras=*) extras="${extras:+$extras,}${arg#--extras=}" ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (use --dev or --extras=gen,dist,rig)" >&2; exit 2 ;;
  esac
done

# 1. Debian packages: EGL + llvmpipe, OSMesa, Xvfb (for a real glfw window), ffmpeg, libusb (Open3D).
apt_pkgs=(libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libosmesa6 xvfb xauth ffmpeg libusb-1.0-0)
if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = "0" ]; then
      echo "[install] apt-get install ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "[install] warning: missing system packages (${missing[*]}); run as root or: sudo apt-get install ${missing[*]}" >&2
    fi
  fi
fi

# 2. Virtual environment.
py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[install] creating .venv"
  "$py" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

# 3. torch first: on this machine kind the pinned CPU wheel lies on disk; any other spec pulls GBs.
torch_spec=${FOURD_TORCH:-torch==2.13.0}
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "[install] $torch_spec"
  "${pip[@]}" install "$torch_spec"
fi

stamp=.venv/.fourd-installed
want="$(cat pyproject.toml | sha1sum | cut -c1-12)-$extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[install] fourd${extras:+[$extras]} (editable)"
  "${pip[@]}" install -e ".${extras:+[$extras]}"
  echo "$want" > "$stamp"
fi
echo "[install] ok: $(.venv/bin/python -c 'import fourd, torch; print("fourd", fourd.__version__, "torch", torch.__version__)')"

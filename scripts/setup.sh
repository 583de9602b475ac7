#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine, idempotently:
#   - a .venv at the repository root with every extra installed (stedi, mpremote, micropython, ...)
#   - mosquitto (the MQTT broker the tests start) and chromium (renders the pipeline report),
#     through apt when running as root
#   - a class-data-sharing archive of Spark's JVM classes (`stedi pipeline warm-up`)
# Needs: Python 3.11+, Java 17+ (for Spark).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "setup: Python 3.11 or newer is needed (found $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if ! command -v java >/dev/null 2>&1; then
  echo "setup: warning: no java on PATH; Spark (the pipeline) needs Java 17+" >&2
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last successful install.
stamp=.venv/.stedi-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! .venv/bin/python -c 'import stedi' 2>/dev/null; then
  echo "setup: installing stedi with all extras into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[all]'
  touch "$stamp"
fi

# System packages the tests start for real: mosquitto (MQTT broker) and chromium (renders the
# pipeline report headless).  One `apt-get update` per set-up run, only if something is missing.
apt_updated=
apt_install() {  # apt_install PACKAGE WHAT-IS-SKIPPED-WITHOUT-IT
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing $1 with apt"
    if [ -z "$apt_updated" ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
  else
    echo "setup: warning: $1 is not installed and cannot be installed here (not root or no apt);" \
         "$2 will be skipped outside CI" >&2
  fi
}
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  apt_install mosquitto "MQTT tests"
fi
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium "the report's browser-rendering test"
fi
# Spark sessions start about twice as fast with the JVM classes of a pipeline run archived
# (cloud_pipeline/class_archive.py); without it everything still works, only slower.
if command -v java >/dev/null 2>&1; then
  .venv/bin/stedi pipeline warm-up --if-missing 2>/dev/null \
    || echo "setup: warning: no Spark class archive recorded; Spark starts without it" >&2
fi
echo "setup: ready (.venv/bin/stedi)"

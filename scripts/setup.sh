#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine, idempotently:
#   - a .venv at the repository root with every extra installed (stedi, mpremote, micropython, ...)
#   - mosquitto (the MQTT broker the tests start) and chromium (renders the pipeline report),
#     through apt when running as root
#   - a class-data-sharing archive of Spark's JVM classes (`stedi pipeline warm-up`)
#   - .venv-spark35: a second environment with pyspark 3.5.6, the Spark of AWS Glue 5.1, in which
#     scripts/test.sh runs the pipeline and AWS tests again (STEDI_SPARK35=0 skips it)
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

# The deployed Glue jobs run on Glue's Spark, not on the newest one: a second environment with that
# Spark (docs/pipeline.md, "Spark and Glue versions") so that the test command runs the pipeline
# on both.  Same stamp rule as .venv; the pin is checked too, since pip could have upgraded it.
SPARK35=3.5.6
if [ "${STEDI_SPARK35:-1}" != 0 ]; then
  if [ ! -x .venv-spark35/bin/python ]; then
    echo "setup: creating .venv-spark35 (pyspark $SPARK35)"
    "$PYTHON" -m venv .venv-spark35
  fi
  stamp35=.venv-spark35/.stedi-installed
  if [ ! -f "$stamp35" ] || [ pyproject.toml -nt "$stamp35" ] \
     || ! .venv-spark35/bin/python -c "import stedi, pyspark, sys; sys.exit(pyspark.__version__ != '$SPARK35')" 2>/dev/null; then
    echo "setup: installing stedi with pyspark $SPARK35 into .venv-spark35"
    .venv-spark35/bin/python -m pip install --quiet --upgrade pip
    # Every extra, as in .venv: the pipeline tests use the simulator's fleets and the CLI.
    .venv-spark35/bin/python -m pip install --quiet -e '.[all]' "pyspark==$SPARK35"
    touch "$stamp35"
  fi
  # The class archive is named after the PySpark and Java it was recorded with
  # (cloud_pipeline/class_archive.py), so each environment records and maps its own.
  if command -v java >/dev/null 2>&1; then
    .venv-spark35/bin/stedi pipeline warm-up --if-missing 2>/dev/null \
      || echo "setup: warning: no Spark $SPARK35 class archive recorded; its sessions start without it" >&2
  fi
fi
echo "setup: ready (.venv/bin/stedi)"

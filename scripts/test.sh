#!/usr/bin/env bash
# Set up, then run every check: ruff, mypy, import-linter, and the whole pytest suite (slow tests
# included, in two processes side by side: see below).  Then the tests of what runs on Glue again
# under pyspark 3.5.6, the Spark of AWS Glue 5.1, in .venv-spark35 (scripts/setup.sh makes it;
# STEDI_SPARK35=0 skips both).  Any run failing fails the command.  Extra arguments go to every
# pytest run, e.g. `bash scripts/test.sh -k lake -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy stedi stedi_app gateway cloud_pipeline simulator
echo "== import-linter (the layers in pyproject.toml)"
.venv/bin/lint-imports --no-cache

# pytest's exit 5 (no test collected) is a failure here: the suite must never be empty.  Only the
# Spark 3.5 run given a selection (`-k mqtt`) may select nothing of tests/pipeline and tests/aws.
run_pytest() {  # run_pytest EMPTY-OK PYTHON ARGS...
  local empty_ok=$1 python=$2
  shift 2
  set +e
  "$python" -m pytest "$@"
  local rc=$?
  set -e
  if [ "$rc" = 5 ] && [ "$empty_ok" = 1 ]; then
    echo "pytest on Spark 3.5: the selection holds no pipeline or AWS test"
    rc=0
  elif [ "$rc" = 5 ]; then
    echo "pytest collected no tests: that is a failure here, the suite must never be empty" >&2
    rc=1
  fi
  return "$rc"
}

# What runs on Glue, tested again on Glue's Spark: the landing parse, the jobs, jobs one by one
# through the Glue entry, the Glue scripts under spark-submit, the cluster store, the salt and the
# DDL read through Spark.  The rest (the runner's other paths, properties, drift and fleet
# generators, the S3 cache, CLI, report, deploy, IAM, warm-up) is the same Python around the same
# Spark calls and runs on the main environment only: with it the command passes the 30 minutes
# the README allows on 2 cores (docs/pipeline.md, "Spark and Glue versions").
SPARK35_TESTS=(
  tests/pipeline/test_landing.py tests/pipeline/test_jobs.py tests/pipeline/test_jobs_one_by_one.py
  tests/pipeline/test_damaged_files.py
  tests/aws/test_glue_scripts.py tests/aws/test_s3_cluster.py tests/aws/test_glue_salt.py tests/aws/test_ddl.py
)

# The suite in two pytest processes side by side: the Spark tests (one JVM, CPU-bound in bursts)
# and the device tests (MicroPython boards, the virtual radio, the gateway, the demo: mostly
# waiting on sockets and timers, about 1.5 CPU-minutes in 11 minutes).  One process after the
# other kept a 2-core machine about a third busy and took 26-32 minutes; side by side the
# command takes the longer of the two (the Spark tests').  Each has its own temporary folder.  Arguments naming
# test paths run one process with just them (`bash scripts/test.sh tests/gateway -x`).
SPARK_GROUP=(tests/pipeline tests/aws tests/foundation tests/fuzz tests/security)
DEVICE_GROUP=(tests/firmware tests/gateway tests/simulator tests/e2e)
named_paths=0
for arg in "$@"; do
  case "$arg" in tests|tests/*) named_paths=1 ;; esac
done
listed=$(find tests -mindepth 1 -maxdepth 1 -type d ! -name '__pycache__' ! -name harness -printf '%p\n' | sort)
grouped=$(printf '%s\n' "${SPARK_GROUP[@]}" "${DEVICE_GROUP[@]}" | sort)
if [ "$named_paths" = 0 ] && [ "$listed" != "$grouped" ]; then
  echo "scripts/test.sh: the test folders are not the two groups' (add a new folder to one):" >&2
  diff <(echo "$grouped") <(echo "$listed") >&2 || true
  exit 1
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/stedi-tests.XXXXXX")
device_pid=""
stop_devices() {  # on an early exit (Ctrl-C): a background job ignores SIGINT, so it gets SIGTERM
  if [ -n "$device_pid" ]; then kill -TERM "$device_pid" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap stop_devices EXIT

rc=0
if [ "$named_paths" = 1 ]; then
  echo "== pytest"
  run_pytest 0 .venv/bin/python "$@" || rc=$?
else
  device_log="$scratch/device-tests.log"
  echo "== pytest: the device tests (${DEVICE_GROUP[*]}) run alongside; their output follows the Spark tests'"
  # Exit 5 (nothing collected) is judged for both processes together below.
  .venv/bin/python -m pytest --basetemp "$scratch/device-tmp" "${DEVICE_GROUP[@]}" "$@" >"$device_log" 2>&1 &
  device_pid=$!
  echo "== pytest: the Spark tests (${SPARK_GROUP[*]})"
  set +e
  # Niced: the device tests sample sensors and keep radio schedules in real time (a 50 Hz sampler,
  # a 33 ms ranging budget), so when both want a core they get it and Spark waits.
  nice -n 10 .venv/bin/python -m pytest --basetemp "$scratch/spark-tmp" "${SPARK_GROUP[@]}" "$@"
  spark_rc=$?
  wait "$device_pid"
  device_rc=$?
  set -e
  device_pid=""
  echo "== pytest: the device tests (run alongside)"
  cat "$device_log"
  if [ "$spark_rc" = 5 ] && [ "$device_rc" = 5 ]; then
    echo "pytest collected no tests: that is a failure here, the suite must never be empty" >&2
    rc=1
  else
    for r in "$spark_rc" "$device_rc"; do
      if [ "$r" != 0 ] && [ "$r" != 5 ] && [ "$rc" = 0 ]; then rc=$r; fi
    done
  fi
fi
if [ "$named_paths" = 1 ] && [ "${STEDI_SPARK35:-1}" != 0 ]; then
  echo "== the Spark 3.5 run is skipped when test paths are named; without paths it runs SPARK35_TESTS"
elif [ "${STEDI_SPARK35:-1}" != 0 ]; then
  echo "== pytest: what runs on Glue, on pyspark $(.venv-spark35/bin/python -c 'import pyspark; print(pyspark.__version__)')"
  empty_ok=0
  if [ "$#" -gt 0 ]; then empty_ok=1; fi
  run_pytest "$empty_ok" .venv-spark35/bin/python "${SPARK35_TESTS[@]}" "$@" || rc35=$?
  if [ "${rc35:-0}" != 0 ]; then
    echo "pytest on Spark 3.5 failed (exit ${rc35})" >&2
    if [ "$rc" = 0 ]; then rc=$rc35; fi
  fi
fi
exit "$rc"

#!/usr/bin/env bash
# Set up, then run every check: ruff, mypy, import-linter, and the whole pytest suite (slow tests included).
# Then the tests of what runs on Glue again under pyspark 3.5.6, the Spark of AWS Glue 5.1, in
# .venv-spark35 (scripts/setup.sh makes it; STEDI_SPARK35=0 skips both).  Either run failing fails
# the command.  Extra arguments go to both pytest runs, e.g. `bash scripts/test.sh -k lake -x`.
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

echo "== pytest"
rc=0
run_pytest 0 .venv/bin/python "$@" || rc=$?
if [ "${STEDI_SPARK35:-1}" != 0 ]; then
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

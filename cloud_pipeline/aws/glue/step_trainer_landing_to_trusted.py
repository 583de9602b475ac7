"""Glue / spark-submit job: step_trainer_landing_to_trusted.

    spark-submit step_trainer_landing_to_trusted.py --JOB_NAME step_trainer_landing_to_trusted --lake s3://bucket/prefix
"""

import sys

from cloud_pipeline.aws.glue.entry import main

if __name__ == "__main__":
    sys.exit(main("step_trainer_landing_to_trusted"))

"""Glue / spark-submit job: machine_learning_curated.

    spark-submit machine_learning_curated.py --JOB_NAME machine_learning_curated --lake s3://bucket/prefix
"""

import sys

from cloud_pipeline.aws.glue.entry import main

if __name__ == "__main__":
    sys.exit(main("machine_learning_curated"))

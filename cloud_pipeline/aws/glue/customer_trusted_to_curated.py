"""Glue / spark-submit job: customer_trusted_to_curated.

    spark-submit customer_trusted_to_curated.py --JOB_NAME customer_trusted_to_curated --lake s3://bucket/prefix
"""

import sys

from cloud_pipeline.aws.glue.entry import main

if __name__ == "__main__":
    sys.exit(main("customer_trusted_to_curated"))

"""Glue / spark-submit job: customer_landing_to_trusted.

    spark-submit customer_landing_to_trusted.py --JOB_NAME customer_landing_to_trusted --lake s3://bucket/prefix
"""

import sys

from cloud_pipeline.aws.glue.entry import main

if __name__ == "__main__":
    sys.exit(main("customer_landing_to_trusted"))

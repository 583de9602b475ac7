"""Glue / spark-submit job: accelerometer_landing_to_trusted.

    spark-submit accelerometer_landing_to_trusted.py --JOB_NAME accelerometer_landing_to_trusted --lake s3://bucket/prefix
"""

import sys

from cloud_pipeline.aws.glue.entry import main

if __name__ == "__main__":
    sys.exit(main("accelerometer_landing_to_trusted"))

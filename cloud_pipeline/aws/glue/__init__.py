"""AWS Glue / spark-submit entry points: one script per job, the same job code as the local runner."""

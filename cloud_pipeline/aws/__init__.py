"""AWS: Glue entry points, Athena DDL, deployment; imports the runner, storage, transforms and the core."""

"""Pure Spark transforms: landing parse, the five jobs, reconciliation, schemas; imports only the core."""

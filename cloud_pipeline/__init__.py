"""The Spark lakehouse: landing -> trusted -> curated, catalog and queries."""

"""The Spark lakehouse (landing -> trusted -> curated): imports the core only, never another part."""

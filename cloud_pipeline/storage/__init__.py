"""Where the zones live: folder or S3 lake, versions and state, S3 cache, erase, catalog; imports transforms and the core."""

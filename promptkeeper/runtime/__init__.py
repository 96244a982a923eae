"""Resolution at run time: caches, invalidation bus, stream to SDKs."""

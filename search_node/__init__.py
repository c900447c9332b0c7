"""A genuine Elasticsearch node for tests, benchmarks and local runs (decision 0016)."""

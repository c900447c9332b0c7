"""The index backends: PostgreSQL full-text (default) and Elasticsearch. All index I/O lives here."""

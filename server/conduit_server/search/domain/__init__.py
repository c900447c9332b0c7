"""The rules of search: documents and their versions, queries, snippets, reindexing. No I/O here."""

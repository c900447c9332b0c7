"""The rules of articles, comments, favorites, tags and imports. No grpc, no SQL here."""

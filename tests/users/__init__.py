"""Users service: RealWorld accounts, tokens, sessions, OAuth2, roles and rate limits over gRPC."""

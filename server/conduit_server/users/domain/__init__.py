"""The rules of accounts, profiles, follows, sessions, signing keys and service accounts. No grpc, no SQL."""

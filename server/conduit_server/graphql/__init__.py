"""The graphql service: one GraphQL endpoint (queries, mutations, subscriptions over WebSocket) over the mesh.

It owns no data: every field is answered by the RPCs of the other services, called through their
generated stubs with the caller's `Authorization` (docs/decisions/0031-graphql-over-the-mesh.md).
"""

"""Outgoing webhooks: endpoints, signed deliveries of the mesh events (decisions 0040-0042)."""

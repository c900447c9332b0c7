"""Where realtime reads stored data: the retained history of the event streams (Redis)."""

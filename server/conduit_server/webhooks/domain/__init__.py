"""Rules of webhooks: signatures, targets (SSRF), the retry schedule, endpoints and deliveries."""

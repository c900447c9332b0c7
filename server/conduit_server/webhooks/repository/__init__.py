"""Webhooks SQL (schema `webhooks`) and the HTTP adapter that reaches receivers."""

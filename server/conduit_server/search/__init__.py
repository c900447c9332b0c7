"""The search service: full-text article search fed by the articles event stream."""

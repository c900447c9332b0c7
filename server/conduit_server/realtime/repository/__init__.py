"""Where realtime reads what it does not own: author profiles and followees from the users service."""

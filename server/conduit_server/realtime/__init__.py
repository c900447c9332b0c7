"""The realtime service: resumable watch streams over the articles events."""

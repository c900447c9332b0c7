"""What other services import to reach the users service: its calls and the directory cache it owns."""

"""The rules of watch streams: selection, resume positions, fan-out, personalisation. No grpc."""

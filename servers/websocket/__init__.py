"""The feed WebSocket: the endpoint (handshake, admission, refusals) and one accepted session."""

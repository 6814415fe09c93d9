"""Server-Sent Events: the endpoint (admission, sse-starlette's response) and pushlab's stream."""

"""Server-Sent Events: the endpoint (admission, the sse-starlette path) and pushlab's stream."""

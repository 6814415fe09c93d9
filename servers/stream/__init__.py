"""HTTP streaming: the feed as NDJSON over one chunked response (``GET /stream``)."""

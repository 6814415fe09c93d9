"""App-wide timers: one per app, not one per connection (heartbeat, send watchdog, keep-alive),
and the bounded release of a connection whose peer stopped reading."""

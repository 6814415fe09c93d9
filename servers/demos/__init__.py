"""The demos beside the feed transports: echo, chat, the whiteboard and the browser pages."""

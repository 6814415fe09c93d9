"""The pushlab server: ``create_app(settings)`` and one module per transport."""

from servers.app import create_app

__all__ = ["create_app"]

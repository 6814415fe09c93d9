"""Locust load drivers, one locustfile per transport; run them with ``locust -f``, never import
them from asyncio code or the pytest process (Locust monkey-patches sockets with gevent)."""

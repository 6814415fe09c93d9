"""Autobahn|Testsuite setup (``setup.sh``) and runner (``run.py``) for ``WS /echo``."""

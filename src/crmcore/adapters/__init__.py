"""Implementations of :mod:`crmcore.ports`: in memory, and SQLAlchemy (optional extra).

Adapters are imported by a composition root (the host's code, the CLI, tests), never by the
domain, the services or the analytics.
"""

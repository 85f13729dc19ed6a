"""Durable state: claims, bindings, tenants, the device inventory and the audit trail."""

from gpupool.store.engine import database_url, make_engine
from gpupool.store.store import Store

__all__ = ["Store", "database_url", "make_engine"]

"""Python SDK for the gpupool REST API."""

from gpupool.client.client import Client

__all__ = ["Client"]

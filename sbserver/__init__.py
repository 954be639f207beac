"""sbserver: a self-hosted backend that speaks the StaticBackend API."""

__version__ = "0.1.0"

"""Ground web console, JSON API and OGC API - Features over the alert store (``orbitwatch ground web``)."""

from pipelines.ground.web.app import TOKEN_ENV, check_bind, create_app, is_loopback

__all__ = ["TOKEN_ENV", "check_bind", "create_app", "is_loopback"]

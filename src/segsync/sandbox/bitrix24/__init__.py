"""Emulated Bitrix24 portals: ``Bitrix24Portal(world, name=..., options=Bitrix24Options())`` +
``build_app(portal)`` (mount at ``/b24/<name>``), and the shared OAuth server (``/b24oauth``)."""

from segsync.sandbox.bitrix24.app import build_app
from segsync.sandbox.bitrix24.oauth import OAuthServer, build_oauth_app
from segsync.sandbox.bitrix24.options import Bitrix24Options
from segsync.sandbox.bitrix24.portal import Bitrix24Portal

__all__ = ["Bitrix24Options", "Bitrix24Portal", "OAuthServer", "build_app", "build_oauth_app"]

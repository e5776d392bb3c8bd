"""The examiner workbench: server-rendered pages of a national node (issue 4)."""

from prum.web.app import web_router

__all__ = ["web_router"]

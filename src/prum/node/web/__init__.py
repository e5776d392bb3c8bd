"""The examiner workbench: server-rendered pages of a national node (issue 4)."""

from prum.node.web.app import web_router

__all__ = ["web_router"]

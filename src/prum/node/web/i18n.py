"""The workbench in English, German and French: gettext catalogues per language.

Templates mark their text with ``{% trans %}`` and ``_()`` (jinja2.ext.i18n); Python
marks words it hands to templates with :func:`N_` (translated where shown, e.g.
``labels.label``). The catalogues are ``locale/<lang>/LC_MESSAGES/messages.po``,
compiled to ``.mo`` and shipped with the package (docs/workbench.md, "Languages",
says how to update them). Messages of the error tree and data from other countries
stay as they came (English, or the holder's words).

The officer chooses the language (a link in the page header, kept in a cookie); the
browser's Accept-Language decides until then.
"""

from __future__ import annotations

import gettext
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from starlette.requests import Request

LANGUAGES = {"en": "English", "de": "Deutsch", "fr": "Français"}
DEFAULT = "en"
COOKIE = "prum_language"
LOCALE_DIR = Path(__file__).parent / "locale"
# The language of the page being rendered (set around each rendering by base.page).
current: ContextVar[str] = ContextVar("workbench_language", default=DEFAULT)


def N_(text: str) -> str:
    """Mark ``text`` for the catalogue; it is translated where it is shown."""
    return text


@cache
def catalogue(language: str) -> gettext.NullTranslations:
    if language == DEFAULT:
        return gettext.NullTranslations()
    return gettext.translation("messages", LOCALE_DIR, [language], fallback=True)


def translate(message: str) -> str:
    return catalogue(current.get()).gettext(message)


def translate_plural(singular: str, plural: str, n: int) -> str:
    return catalogue(current.get()).ngettext(singular, plural, n)


def chosen(request: Request) -> str:
    """The officer's choice (cookie), else the browser's first language we have."""
    cookie = request.cookies.get(COOKIE, "")
    if cookie in LANGUAGES:
        return cookie
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT

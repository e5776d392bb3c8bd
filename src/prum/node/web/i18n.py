"""The workbench in English, German and French: gettext catalogues per language.

Templates mark their text with ``{% trans %}`` and ``_()`` (jinja2.ext.i18n); Python
marks words it hands to templates with :func:`N_` (translated where shown). The
catalogues are ``locale/<lang>/LC_MESSAGES/messages.po``, compiled to ``.mo`` and
shipped with the package (docs/workbench.md, "Languages", says how to update them).
"""

from __future__ import annotations


def N_(text: str) -> str:
    """Mark ``text`` for the catalogue; it is translated where it is shown."""
    return text

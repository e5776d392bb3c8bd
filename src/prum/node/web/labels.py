"""Words for the codes the workbench shows (statuses, outcomes, reasons, modes), and
times a person can read.

The codes stay stable on the wire, in the audit log and in the database; a person
reads these words (``label`` in every template). A code without words here is shown
with its underscores as spaces, never as ``snake_case``. The words are English
source strings: the templates translate them (gettext, ``prum/node/web/locale``).
"""

from __future__ import annotations

import datetime as dt

from markupsafe import Markup

from prum.node.web.i18n import N_, translate

LABELS: dict[str, str] = {
    # A country's answer to a search (ReplyStatus), and the live page's waiting state.
    "pending": N_("waiting"),
    "answered": N_("answered"),
    "no_hit": N_("no hit"),
    "hit": N_("hit"),
    "timeout": N_("timed out"),
    "unavailable": N_("not reachable"),
    "refused": N_("refused"),
    "error": N_("error"),
    # A search as a whole.
    "sent": N_("waiting for answers"),
    "failed": N_("failed"),
    "lost": N_("interrupted"),
    # Answers counted per country (statistics).
    "answers": N_("answers"),
    "refusals": N_("refusals"),
    "timeouts": N_("timeouts"),
    "errors": N_("errors"),
    # Examiner decisions.
    "confirmed": N_("confirmed"),
    "rejected": N_("rejected"),
    "inconclusive": N_("inconclusive"),
    # Core-data requests.
    "released": N_("released"),
    "on_hold": N_("on hold"),
    "cancelled": N_("withdrawn by the requester"),
    "withdrawn": N_("withdrawn by the holder"),
    # Roles.
    "officer": N_("officer"),
    "examiner": N_("examiner"),
    "approver": N_("approver"),
    "auditor": N_("auditor"),
    "admin": N_("administrator"),
    # Categories.
    "face": N_("face"),
    "dna": N_("DNA profile"),
    "finger": N_("fingerprints"),
    "vehicle": N_("vehicle registration"),
    "records": N_("police records"),
    # Purposes.
    "investigation": N_("criminal investigation"),
    "missing_person": N_("missing person"),
    "unidentified_remains": N_("unidentified human remains"),
    # Automated DNA comparisons.
    "initial_bulk": N_("first comparison of a whole database"),
    "continuous": N_("comparison of new profiles"),
    # Refusal, hold and withdrawal reasons.
    "disproportionate": N_("disproportionate"),
    "national_law_bar": N_("barred by national law"),
    "judicial_authorisation_pending": N_("awaiting judicial authorisation"),
    "judicial_authorisation_refused": N_("judicial authorisation refused"),
    "judicial_authorisation": N_("judicial authorisation needed"),
    "fundamental_rights": N_("fundamental rights"),
    "owner_consulted": N_("the record's owner is consulted"),
    "verdict_revised": N_("the examiners no longer confirm the match"),
    # Error codes a person meets (prum/errors.py).
    "bad_input": N_("invalid input"),
    "unreadable_image": N_("unreadable image"),
    "no_face_found": N_("no face found"),
    "several_faces": N_("several faces"),
    "quality_too_low": N_("quality too low"),
    "unknown_reference": N_("not found"),
    "category_not_offered": N_("category not offered"),
    "purpose_not_allowed": N_("purpose not accepted"),
    "penalty_below_threshold": N_("penalty below the threshold"),
    "capacity_exhausted": N_("daily capacity used up"),
    "not_verified": N_("not yet verified by an examiner"),
    "separation_of_duties": N_("needs a second person"),
    "role_required": N_("role required"),
    "wrong_state": N_("not possible in this state"),
    "matcher_unavailable": N_("matching system unavailable"),
    "matcher_timeout": N_("matching system too slow"),
    "not_authorised": N_("not authorised"),
    "out_of_scope": N_("outside this country's scope"),
    "router_busy": N_("the federation is busy"),
    "no_answer": N_("no answer in time"),
    "unreachable": N_("not reachable"),
    "invalid_dna_profile": N_("invalid DNA profile"),
    "invalid_plate": N_("invalid registration number"),
    "invalid_vin": N_("invalid vehicle identification number"),
    "invalid_person": N_("invalid person data"),
    "malformed_nist_record": N_("unreadable ANSI/NIST-ITL record"),
    "no_minutiae_found": N_("no minutiae found"),
    "method_not_allowed": N_("an address that is not opened directly"),
    "internal_error": N_("a fault in this node"),
    "storage_error": N_("the node's database is not available"),
}

# The statistics' counters (views.MONTHLY), translated where the table shows them.
COUNTERS = (
    N_("searches sent"),
    N_("answers with candidates"),
    N_("matches confirmed"),
    N_("core-data requests"),
    N_("core data released"),
    N_("core data received"),
    N_("candidates withheld (below the release threshold)"),
    N_("searches answered under the investigative setting"),
)

# Words of the search form's choices (views.FINGER_SEARCH_TYPES, search_pages.GENDERS).
CHOICES = (
    N_("ten-print against ten-prints"),
    N_("ten-print against unsolved latents"),
    N_("latent against ten-prints"),
    N_("latent against unsolved latents"),
    N_("unknown"),
    N_("female"),
    N_("male"),
    N_("other"),
)


def label(code: object) -> str:
    """The words for ``code`` (an enum or a string) in the page's language."""
    text = str(getattr(code, "value", code) or "")
    return translate(LABELS.get(text, text.replace("_", " ")))


FORMATS = {"datetime": "%Y-%m-%d %H:%M UTC", "seconds": "%Y-%m-%d %H:%M:%S UTC", "date": "%Y-%m-%d"}


def when(value: dt.datetime | dt.date | str | None, form: str = "datetime") -> Markup:
    """A time as ``<time>``: UTC with its zone in the page, which the browser's script
    (static/page.js) rewrites in the officer's own zone with its abbreviation."""
    if value is None or value == "":
        return Markup("–")
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return Markup.escape(value)
    if not isinstance(value, dt.datetime):  # a date: no zone to convert
        return Markup('<time datetime="{0}">{0}</time>').format(value.isoformat())
    utc = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    return Markup('<time datetime="{}" data-form="{}">{}</time>').format(
        utc.isoformat(timespec="seconds").replace("+00:00", "Z"),
        form,
        utc.strftime(FORMATS.get(form, FORMATS["datetime"])),
    )

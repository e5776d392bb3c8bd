"""Offence categories of the common ECRIS table (Annex A to Council Decision 2009/316/JHA).

Prüm II requires the requester of core data to name the offence category "from the
common table"; searches carry it too so the requested party can apply its own
proportionality rules. Only the top-level headings are listed here: the codes are
opaque keys to the system, and a deployment that needs the sub-categories replaces
this table with the full annex (the table is data, not logic).
"""

from __future__ import annotations

OFFENCES: dict[str, str] = {
    "0100 00": "Crimes within the jurisdiction of the International Criminal Court",
    "0200 00": "Participation in a criminal organisation",
    "0300 00": "Terrorism",
    "0400 00": "Trafficking in human beings",
    "0500 00": "Trafficking in weapons, firearms, ammunition and explosives",
    "0600 00": "Environmental crime",
    "0700 00": "Offences related to drugs or precursors",
    "0800 00": "Crimes against the person",
    "0900 00": "Offences against personal freedom, dignity and other protected interests",
    "1000 00": "Sexual offences",
    "1100 00": "Offences against family law",
    "1200 00": "Offences against the State, public order, justice or public officials",
    "1300 00": "Offences against public property or public interests",
    "1400 00": "Offences against property or causing damage to goods",
    "1500 00": "Theft offences",
    "1600 00": "Offences against information systems and other computer-related crime",
    "1700 00": "Offences related to means of payment",
    "1800 00": "Forgery, counterfeiting and fraud",
    "1900 00": "Corruption",
    "2000 00": "Money laundering",
    "2100 00": "Traffic offences",
    "2200 00": "Offences related to immigration and residence",
}

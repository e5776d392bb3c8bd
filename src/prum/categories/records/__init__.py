"""The police-records category (EPRIS, ADEP technique): pseudonymised biographical
search. Normalisation, federation key, encodings, index, store, matcher
(docs/records.md)."""

"""Security: the federation PKI and TLS contexts (:mod:`.pki`), signed messages and
replay protection (:mod:`.signing`), the ``prum pki`` commands (:mod:`.cli`)."""

"""``prum conformance``: the wire-contract checks of docs/protocol.md, run against any
node's federation endpoint.

The kit plays the router toward the tested node: it holds the ROUTER certificate of a
test PKI and certificates of requesting parties that sign the requests it forwards.
It speaks to the node only over the wire (HTTPS with client certificates, signed
envelopes), so it works against a node written by anyone: it imports the wire layer
(prum.federation.messages, prum.federation.security) and never a node or a category.
Nothing in the core imports it. See docs/conformance.md.
"""

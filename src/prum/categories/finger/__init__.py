"""Fingerprints: ANSI/NIST-ITL transactions, WSQ images, quality, minutiae, matching.

``types`` holds the shared values (FingerImage, Minutia, Transaction); ``images``
decodes, encodes and resamples; ``nist`` reads and writes transactions; ``quality``
scores an image (NFIQ 2) and enforces the configured minimums.
"""

"""The synthetic template generator lives in the package (the demo uses it too)."""

from prum.categories.face.synthetic import (  # noqa: F401
    CATEGORY_SHARES,
    REAL_DLIB,
    UNKNOWN_DOB,
    Chunk,
    EmbeddingModel,
    EmbeddingShape,
    distance_percentiles,
    gallery_chunks,
)

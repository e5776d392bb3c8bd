"""The face category: decode, detect, landmarks, quality, embed (the pipeline), the
national gallery (store, vector index) and its matcher (docs/architecture.md)."""

"""The MPS engine: models, preprocessing, the masked oracle, responsibility, extraction."""

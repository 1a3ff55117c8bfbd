"""The MPS engine: a loaded model, the masked oracle, each image's search, the scheduler that
shares model calls between searches, and the local executor (`explainer.Engine`)."""

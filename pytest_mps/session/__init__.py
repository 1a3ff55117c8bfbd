"""A run's MPS work: which executor explains which images, the results kept, cached and shared
between processes, progress told, and each audit built from them (`session.MPSSession`)."""

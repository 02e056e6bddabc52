"""Linear algebra primitives (np.linalg): filled in by the linalg work."""

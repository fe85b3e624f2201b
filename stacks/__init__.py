"""Stack programs: ``preview`` (one per PR), ``shared`` (once per cluster) and ``driver`` (prenv in-cluster)."""

"""omnitill domains: pure decide/evolve cores and their actor shells."""

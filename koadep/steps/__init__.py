"""The shared DQA steps, grouped by concern: identity, program, provenance, imaging,
observatory, derived keywords and CCD detector helpers (binning, amplifiers,
prescan/postscan statistics)."""

"""The shared DQA steps, grouped by concern: identity, program, provenance, imaging,
observatory and derived keywords."""

"""ALPHA-REN Python SDK: services run by the integrator's worker processes."""

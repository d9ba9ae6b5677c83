"""Prefect deployments: one per environment. `serve.py` serves them all from one process."""

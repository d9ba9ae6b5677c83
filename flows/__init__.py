"""Prefect flows: the reconcile DAG, composed from tasks/. Imported lazily by the CLI."""

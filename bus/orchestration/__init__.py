"""Airflow orchestration: a manifest written by ``lgsp``, thin DAG files built from it, and
the task functions the DAGs call (the same code as the CLI)."""

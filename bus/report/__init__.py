"""Reports computed from published datasets: working-day calendar and on-time dossier scoring."""

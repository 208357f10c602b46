"""Ingest: one module per source turning connector records into store rows, with the
source's cursor committed in the same transaction."""

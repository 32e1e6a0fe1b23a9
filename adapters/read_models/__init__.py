"""Read-model tables: the SQL side of each read model (DDL, batched writers, queries)."""

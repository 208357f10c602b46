"""The store: SQLAlchemy models, engine, migrations, and the write primitives every
source uses (upsert on natural keys, cursors, quarantine)."""

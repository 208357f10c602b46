"""The demo: a local SQLite CRM with realistic seed data, generated data for every source,
and one run of the whole asset graph (`hub demo`)."""

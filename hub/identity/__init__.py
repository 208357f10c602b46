"""Identity resolution: normalize contact keys, find or create the contact behind a record,
merge duplicates with a log."""

"""Project backups: a consistent snapshot of database, versions, config and run files, and restore."""

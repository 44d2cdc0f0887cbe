"""Storage: tortoise-orm models, database start-up and migrations."""

"""The unified record interchange: the file formats `export` writes records in (and `import`
reads), in the long schema of `../shared/data/records`.

A module of its own, free of SQLAlchemy and polars, because the CLI offers these names before it
knows whether the command will touch the catalogue at all.
"""

EXPORT_FORMATS = ("parquet", "csv", "jsonl")

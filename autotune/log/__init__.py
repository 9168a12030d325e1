"""The tuning log: one record key, record stores, the line schema per version, the log tools and packs.

`key` (RecordKey: which records compete), `record` (a line), `schema` (`schema/<v>/`),
`store` (RecordStore, MemoryStore), `jsonl` (the file store, atomic rewrites),
`merge` / `summary` / `validate` / `upgrade` (the `autotune log` verbs), `packs`, and
`replay` (a runner that answers from a store).
"""

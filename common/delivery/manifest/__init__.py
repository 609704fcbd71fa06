"""The manifest: one parquet row per sample of a delivery, written by `nia index`.

One job per module: :mod:`~common.delivery.manifest.schema` (the columns, their
types, the metadata keys), :mod:`~common.delivery.manifest.file` (reading and
writing the file), :mod:`~common.delivery.manifest.workers` (the worker
processes that stat, parse and read headers), :mod:`~common.delivery.manifest.columns`
(the sample columns, and the workers' batches placed on their rows),
:mod:`~common.delivery.manifest.reuse` (what a re-index takes from the previous
manifest) and :mod:`~common.delivery.manifest.build` (the index run).
"""
from common.delivery.manifest.build import IndexResult, build_index
from common.delivery.manifest.file import read_manifest, read_table, write_manifest
from common.delivery.manifest.schema import (ADDED_TYPES, INDEX_SCHEMA, KNOWN_TYPES, LABEL_FIELDS, NAME_FIELDS,
                                             ROOT_KEY, SAMPLE_FIELDS, VERSION_KEY, ManifestError)
from common.delivery.manifest.workers import default_workers, parse_one, parse_slow
from common.delivery.walk import NO_JSON, NO_PNG

__all__ = ["ADDED_TYPES", "INDEX_SCHEMA", "KNOWN_TYPES", "LABEL_FIELDS", "NAME_FIELDS", "NO_JSON", "NO_PNG", "ROOT_KEY",
           "SAMPLE_FIELDS", "VERSION_KEY", "IndexResult", "ManifestError", "build_index", "default_workers",
           "parse_one", "parse_slow", "read_manifest", "read_table", "write_manifest"]

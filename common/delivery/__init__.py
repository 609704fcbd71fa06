"""The data layer: a delivery (zip parts or a tree) -> one manifest row per sample, audited and split.

`prepare` (merge and extract), `walk` (find and pair files), `labels` and
`label_columns` (parse and validate label JSON), `filenames` (NIA names by
position), `png_header` and `image_checks` (images checked against their
labels), `manifest` (`nia index`), `stats` (`nia stats`), `synthetic_tracks`
(eye-tracker tracks the builder made up), `splits` (`nia split`).
"""

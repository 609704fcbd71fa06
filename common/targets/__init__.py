"""Derived targets: what each test reads, made from the manifest.

`geometry`, `profiles` and `gaze` (gaze angles from labels and device
profiles), `masks` (class maps), `crops`, `crop_resume` and `crop_rows`
(`nia crops` and reading its output), `video` and `clips` (exact-frame
reading and `nia clips`).
"""

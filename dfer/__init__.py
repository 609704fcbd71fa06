"""Former-DFER observer-state test (the third acceptance test): what is Former-DFER's own.

model (the network), checkpoint (safe reading of original and our weights),
sampling (which 16 frames), transforms (crop/flip/resize to 112 x 112, [0, 1]),
config (defaults and presets). See docs/dfer.md.
"""

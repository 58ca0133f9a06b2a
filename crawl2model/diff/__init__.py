"""`pipeline diff RUN_A RUN_B`: two finished runs compared stage by stage, from what each run
recorded about itself (manifest.json, each stage's stats.json and _fingerprint.json, config.yaml),
and, for a stage whose output changed, the id and removal columns of its own Parquet.

`compare.compare` returns a typed `RunDiff` (what `--json` prints); `text.render` turns it into
lines. The top layer: nothing in the kernel imports it, it only reads what the kernel wrote. This
file imports nothing, so the two modules import each other's package without a circle.
"""

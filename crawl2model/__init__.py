"""crawl2model: from raw web crawls to a trained, aligned language model.

The layers, lowest first; a module imports only from its own layer and the layers below it
(tests/test_layers.py parses every import and checks this, and that there are no circles):

1. `crawl2model.pipeline`: the kernel. The stage API (`stage`, `global_stage`), the run's
   config and typed plan (`config`, `plan`), storage and records (`storage`, `records`), the
   readers of inputs (`sources`, `warc`, ...), and the engine that runs a plan (`worker`, and
   `runner`, the only module that knows Ray). It knows no concrete stage.
2. `crawl2model.model`: the Llama decoder. Torch only.
3. `crawl2model.classifiers` and `crawl2model.train`: fastText classifiers and the trainers;
   they use the kernel's storage (and `train` uses `model`).
4. `crawl2model.stages`: the built-in stages, each a module named as its type.
5. `crawl2model.catalog` (finds stages by type name and loads a run's config with them),
   `crawl2model.cli` (the `pipeline` command), `crawl2model.report` (report.html) and
   `crawl2model.diff` (two runs compared, for `pipeline diff`): the top.
"""

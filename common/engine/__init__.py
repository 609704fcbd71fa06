"""The training and validation engine the three tests share.

A model folder provides only what is its own; the engine does the rest:

* training (`common.engine.train`): a `TrainTask` = datasets whose items are
  `(inputs, targets, index, ok)` (inputs 4-D images or 5-D clips per batch,
  targets a tensor or a tuple), `build_model`, `prepare` (loader inputs ->
  network input on the device), `loss(outputs, targets, epoch)`,
  `val_sums` + `val_metric` with a `Metric` (column, direction, threshold),
  `make_optimizer`, `lr_at(epoch, history)` (`common.engine.schedule`), and
  a config extending `TrainConfig`. `fit` runs the epochs: DDP/AMP/
  SyncBatchNorm set-up, early stopping, resume, checkpoints, log and curves.
* validation (`common.engine.validate`): a `ValidationTask` = how to read a
  split, predict with weights or read predictions, build per-sample rows and
  score them; `run_validation` and the shared options do the rest.

Modules: `device` (device, threads, seeding, cuDNN, CUDA features),
`distributed` (process group helpers), `batches` (item contract, batch
normalisation), `inference` (outputs placed by dataset index), `checkpoint`
(safetensors + JSON), `safe_load` (other people's pickled weights, run nothing), `schedule`
(learning-rate rules), `progress`, `training_log`, `train`, `validate`,
`loaded` (`LoadedModel`, what every `load_model` returns), `presets`
(`named_preset`, `BN_MODES`), `train_main` (a train script's config on a new
run or `--resume`).
"""

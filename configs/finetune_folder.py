"""Fine-tune pretrained weights on an image folder (one sub-folder per class; docs/data.md).

  python -m effnet_jax.main --config configs/finetune_folder.py --workdir /ckpt/pets_b0 \\
      --config.model=efficientnet_b0 --config.init_from=/weights/efficientnet_b0 \\
      --config.data.train_folder=/data/pets/train --config.data.eval_folder=/data/pets/val

``init_from`` is a pretrained directory (``effnet_jax.tools.convert``, ``save_pretrained``), a
training workdir or released weights by name (``efficientnet_lite0.in1k``, ``hf-hub:ORG/REPO``;
docs/weights.md); ``model`` (and ``model_overrides``, e.g. ``padding=symmetric`` for weights of
PyTorch origin) must name the same architecture — a mismatch is an error listing what differs.
The classifier is re-initialised for the folder's classes (the log and metrics.jsonl name it);
everything else, BN statistics included, starts from the weights.

The recipe: SGD with Nesterov momentum at a fraction of a from-scratch learning rate (0.04 per
256 images, i.e. 0.01 at batch 64; cosine decay after a one-epoch warm-up), 15 epochs, the
model's own train and eval sizes, Inception crop and flip, label smoothing 0.1, weight decay
1e-5, EMA 0.999 evaluated beside the raw weights. On a new data set try base_learning_rate
0.01-0.1. It computes in bfloat16 on an accelerator and float32 on a CPU (`dtype` unset).
Expected: depends on the data set; no measured result yet (this needs converted ImageNet
weights and a real image folder). Smoke-tested on tiny images in
tests/train/test_finetune.py (loss finite, weights carried over, classifier re-initialised).
"""
from effnet_jax.config import base_config, check_arg_keys, parse_config_arg


def get_config(arg=None):
  check_arg_keys(parse_config_arg(arg), {})
  c = base_config()
  c.model = 'efficientnet_b0'
  # required: --config.init_from=DIR (the input sizes and crop are the model's)
  c.data.update(source='folder', on_bad_image='skip', shuffle_buffer=16384)
  c.input.train_crop = 'inception'
  c.augment.update(flip=True, augment='none', mixup_alpha=0.0,
                   cutmix_alpha=0.0, label_smoothing=0.1)
  c.batch_size = 64
  c.num_epochs = 15.0
  c.optimizer.update(name='sgd', base_learning_rate=0.04, momentum=0.9, nesterov=True,
                     weight_decay=1e-5, weight_decay_mode='coupled', weight_decay_exclude='bn')
  c.schedule.update(name='cosine', warmup_epochs=1.0, min_learning_rate=0.0)
  c.ema_decay = 0.999
  c.eval_every_epochs = 1.0
  c.checkpoint_every_steps = 500
  c.log_every_steps = 20
  return c

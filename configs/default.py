"""The embedded default job: a compound-scaled EfficientNet on Fashion-MNIST, on a laptop CPU.

  python -m effnet_jax.main            # same as: --config configs/default.py --workdir workdirs/default

EfficientNet-B0 scaled down by compound coefficient phi = -10 (width 1.1^-10 = 0.39, depth
1.2^-10 = 0.16; 249k parameters), trained on the embedded data set (the real Fashion-MNIST from
the Debian package dataset-fashion-mnist, served through a local TFDS builder) upsampled to
40 px: at 28 px the stride-2 stem and first stride-2 stage leave a 7x7 map after three layers
and accuracy stalls near 88 %. AdamW with cosine decay, batch 128, 7.5 epochs, EMA evaluated
beside the raw weights.
Expected: >= 90 % test top-1 (the measured result and wall times: README.md and docs/training.md,
'The embedded default job').
"""
from effnet_jax.config import base_config, check_arg_keys, parse_config_arg


def get_config(arg=None):
  check_arg_keys(parse_config_arg(arg), {})  # takes no config argument
  c = base_config()
  c.model = 'efficientnet_b0'
  c.model_overrides.phi = -10.0
  c.model_overrides.depthwise_impl = 'auto'  # unrolled depthwise conv on CPU: much faster steps
  c.model_overrides.bn_momentum = 0.9  # running statistics that keep up with a short run
  c.model_overrides.dropout_rate = 0.0  # a run this short underfits (train accuracy stays
  c.model_overrides.drop_path_rate = 0.0  # below test accuracy): flips are all the regularization
  c.data.update(source='embedded', name='fashion_mnist', train_split='train', eval_split='test',
                cache=True)
  c.input.update(image_size=40, eval_image_size=40, train_crop='none',
                 crop_fraction=1.0)  # evaluate the whole image
  c.augment.update(flip=True, augment='none', label_smoothing=0.0)
  c.batch_size = 128
  c.num_epochs = 7.5
  c.optimizer.update(name='adamw', base_learning_rate=0.008, weight_decay=0.01,  # peak 0.004
                     weight_decay_mode='decoupled', weight_decay_exclude='bn_and_bias')
  c.schedule.update(name='cosine', warmup_epochs=0.5, min_learning_rate=0.0)
  c.ema_decay = 0.999
  c.bn_group_size = 0
  c.dtype = 'float32'
  c.log_every_steps = 50
  c.eval_every_epochs = 3.75
  c.checkpoint_every_steps = 500
  return c

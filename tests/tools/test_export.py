"""effnet_jax.tools.export: the SavedModel and TFLite outputs match the JAX model."""
import json
import os

import jax
import numpy as np
import pytest
import tensorflow as tf

from effnet_jax.pretrained import load_pretrained
from effnet_jax.tools import export

# Max abs error allowed on float32 logits (and probabilities), relative to the largest logit.
# TF runs the serialised StableHLO with its own XLA build, whose fusions round differently
# (measured at most 2.0e-6); TFLite has its own kernels (XNNPACK; measured at most 2.6e-6).
SAVED_MODEL_TOLERANCE = 2e-5
TFLITE_TOLERANCE = 5e-5


def reference(weights, images):
  model, variables = load_pretrained(weights, depthwise_impl='xla')
  return {k: np.asarray(v) for k, v in
          jax.jit(export.inference_function(model))(variables, images).items()}


@pytest.mark.parametrize('model, size', [('efficientnet_b0', 42), ('rexnet_100', 64)])
def test_saved_model_and_tflite_match_jax(tiny_pretrained, tmp_path, model, size):
  weights = tiny_pretrained(1000, model=model)
  output = str(tmp_path / 'export')
  metadata = export.export(weights, output, tflite=True)
  assert metadata['image_size'] == size and len(metadata['labels']) == 1000
  assert json.load(open(os.path.join(output, export.METADATA))) == metadata
  rng = np.random.default_rng(0)
  for batch in (1, 3):  # the batch dimension is polymorphic
    images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
    expected = reference(weights, images)
    scale = np.abs(expected['logits']).max()
    assert scale > 1  # outputs of a realistic size
    served = tf.saved_model.load(output).signatures[export.SIGNATURE](images=tf.constant(images))
    interpreter = tf.lite.Interpreter(model_path=os.path.join(output, export.TFLITE))
    lite = interpreter.get_signature_runner(export.SIGNATURE)(images=images)
    for name, outputs, tolerance in (('SavedModel', served, SAVED_MODEL_TOLERANCE),
                                     ('TFLite', lite, TFLITE_TOLERANCE)):
      for key in ('logits', 'probabilities'):
        got = np.asarray(outputs[key])
        assert got.shape == (batch, 1000) and got.dtype == np.float32
        error = np.abs(got - expected[key]).max()
        print(f'{model} {name} {key} batch {batch}: max abs error {error:.2e} '
              f'(largest logit {scale:.2f})')
        assert error <= tolerance * scale, (name, key, error)


def test_command_line_at_another_size(tiny_pretrained, tmp_path, capsys):
  weights = tiny_pretrained(3, ['ant', 'bee', 'cat'])
  output = str(tmp_path / 'export')
  assert export.main(['--weights', weights, '--output', output, '--image_size', '64',
                      '--platforms', 'cpu']) == 0
  assert 'images float32 [batch, 64, 64, 3]' in capsys.readouterr().out
  assert not os.path.exists(os.path.join(output, export.TFLITE))
  metadata = json.load(open(os.path.join(output, export.METADATA)))
  assert metadata['labels'] == ['ant', 'bee', 'cat'] and metadata['platforms'] == ['cpu']
  images = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype(np.float32)
  served = tf.saved_model.load(output).signatures[export.SIGNATURE](images=tf.constant(images))
  expected = reference(weights, images)['logits']
  np.testing.assert_allclose(served['logits'], expected,
                             atol=SAVED_MODEL_TOLERANCE * np.abs(expected).max())
  os.makedirs(tmp_path / 'empty')
  assert export.main(['--weights', str(tmp_path / 'empty'), '--output', output]) == 1
  assert 'not a pretrained directory' in capsys.readouterr().err
  with pytest.raises(SystemExit) as exit_:  # a path that does not exist: a user error
    export.main(['--weights', str(tmp_path / 'none'), '--output', output])
  assert exit_.value.code == 2 and 'none: no such file or directory' in capsys.readouterr().err


"""What runs on the device imports no TensorFlow (hundreds of MB and seconds of start-up, and a
second runtime competing for the accelerator): the models, the train step and the JAX data ops.
TensorFlow comes in with the tf.data pipeline only (effnet_jax/data/__init__.py imports it on
first use)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('module', ['effnet_jax.train.step', 'effnet_jax.models',
                                    'effnet_jax.data', 'effnet_jax.data.device_augment',
                                    'effnet_jax.data.mix'])
def test_importing_imports_no_tensorflow(module):
  code = (f'import {module}, sys; '
          "assert 'tensorflow' not in sys.modules, 'imports tensorflow'")
  done = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                        timeout=300)
  assert done.returncode == 0, done.stderr


def test_the_pipeline_is_there_on_first_use():
  code = ('import effnet_jax.data as data, sys; '
          "assert 'tensorflow' not in sys.modules; "
          'from effnet_jax.data import eval_iterator, train_iterator, dataset_info; '
          'from effnet_jax.data import pipeline; '
          'assert eval_iterator is pipeline.eval_iterator; '
          "assert 'tensorflow' in sys.modules")
  done = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                        timeout=300)
  assert done.returncode == 0, done.stderr

"""The summary tool and the committed docs/models.md it generates."""
import pathlib

import pytest

from zoo_helpers import zoo_numbers
from effnet_jax.tools import summary

DOCS = pathlib.Path(__file__).resolve().parents[2] / 'docs' / 'models.md'


def test_single_model_summary(capsys):
  assert summary.main(['--model', 'efficientnetv2_s', '--image_size', '64']) == 0
  out = capsys.readouterr().out
  assert '21,458,488' in out and 'at 64 px' in out
  for stage in ('stem', 'stage6', 'head', 'classifier'):
    assert stage in out
  assert 'stage7' not in out
  assert '2x2x256' in out  # stage 6 output at 64 px: stride 32


@pytest.mark.long
def test_docs_models_md_is_generated_by_the_command():
  # zoo_numbers: summary.model_numbers of each model, computed once for the session (the zoo
  # tests check the same numbers against the published ones)
  assert DOCS.read_text() == summary.models_md(zoo_numbers), (
      'regenerate: .venv/bin/python -m effnet_jax.tools.summary --all > docs/models.md')


def test_zoo_numbers_are_one_trace_of_the_model():
  from effnet_jax.models import count_macs, count_params, create_model
  from effnet_jax.models.utils import abstract_variables
  model = create_model('efficientnet_b0')
  assert summary.model_numbers('efficientnet_b0') == (
      count_params(abstract_variables(model, 224)['params']), count_macs(model, 224))

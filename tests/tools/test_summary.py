"""The summary tool and the committed docs/models.md it generates."""
import pathlib

import pytest

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
  assert DOCS.read_text() == summary.models_md(), ('regenerate: .venv/bin/python -m effnet_jax.tools.summary '
                                        '--all > docs/models.md')

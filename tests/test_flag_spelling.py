"""One flag spelling for every command line: underscores (``--batch_size``), as absl's flags and
``--config.key=value`` have. The argparse tools also take the dashed spelling they shipped with
(``--batch-size``), which ``--help`` does not list (effnet_jax/cli.py)."""
import importlib
import os
import subprocess
import sys

import pytest

from effnet_jax import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each argparse tool with a command line that sets every multi-word flag it has; the underscore
# spelling (the dashed one is derived from it).
COMMAND_LINES = {
    'effnet_jax.predict': ['--weights', 'W', '--top_k', '3', '--image_size', '64',
                           '--batch_size', '2', '--max_image_pixels', '100', 'a.jpg'],
    'effnet_jax.tools.benchmark': ['--batch_size', '8', '--image_size', '16', '--vs_timm',
                                   '--no_timm_compile', '--compare_depthwise',
                                   '--device_randaugment', '--peak_bandwidth', '1.5',
                                   '--compilation_cache', 'C'],
    'effnet_jax.tools.benchmark_input': ['--folder', 'F', '--num_images', '3', '--num_classes',
                                         '2', '--image_size', '16', '--batch_size', '4',
                                         '--num_batches', '5', '--warmup_batches', '0',
                                         '--vs_timm'],
    'effnet_jax.tools.convert': ['--source', 'timm', '--arch', 'A', '--input', 'I', '--output',
                                 'O', '--class_names', 'N'],
    'effnet_jax.tools.export': ['--weights', 'W', '--output', 'O', '--image_size', '64',
                                '--tflite_int8', '--representative_folder', 'R',
                                '--representative_count', '5', '--check_folder', 'C'],
    'effnet_jax.tools.prepare_data': ['--input', 'I', '--output', 'O', '--max_side', '320',
                                      '--max_image_pixels', '100'],
    'effnet_jax.tools.summary': ['--model', 'efficientnet_b0', '--image_size', '64'],
}


class _Parsed(Exception):

  def __init__(self, parser):
    super().__init__()
    self.parser = parser


def tool_parser(module: str, monkeypatch) -> cli.ArgumentParser:
  """The parser ``module``'s ``main`` builds, taken when it parses (before any work)."""

  def capture(self, args=None, namespace=None):
    raise _Parsed(self)

  with monkeypatch.context() as patch:
    patch.setattr(cli.ArgumentParser, 'parse_args', capture)
    with pytest.raises(_Parsed) as parsed:
      importlib.import_module(module).main(['--help'])
  return parsed.value.parser


def dashed(args: list[str]) -> list[str]:
  return ['--' + arg[2:].replace('_', '-') if arg.startswith('--') else arg for arg in args]


@pytest.mark.parametrize('module', sorted(COMMAND_LINES))
def test_every_tool_takes_both_spellings_and_lists_the_underscore_one(module, monkeypatch):
  parser = tool_parser(module, monkeypatch)
  underscore = COMMAND_LINES[module]
  assert dashed(underscore) != underscore
  documented = parser.parse_args(underscore)
  assert parser.parse_args(dashed(underscore)) == documented
  given = {arg for arg in underscore if arg.startswith('--')}
  for action in parser._actions:  # the flags given did set something
    if given & set(action.option_strings):
      assert getattr(documented, action.dest) != action.default, action.dest
  registered = [option for action in parser._actions for option in action.option_strings]
  assert given <= set(registered)
  assert not [option for option in registered if '-' in option.lstrip('-')], registered
  listed = [word.strip('[]|,().') for text in parser.format_help().split()
            for word in text.split('/')]
  assert given <= set(listed)
  assert not [word for word in listed if word.startswith('--') and '-' in word[2:]], listed


def test_an_abbreviated_dashed_flag_and_a_value_after_double_dash():
  parser = cli.ArgumentParser('effnet_jax.test')
  parser.add_argument('--batch-size', type=int, default=1)
  parser.add_argument('--flag', action='store_true')
  parser.add_argument('rest', nargs='*')
  assert parser.parse_args(['--batch-s=4']).batch_size == 4
  assert parser.parse_args(['--batch-size', '4', '--', '--batch-size']).rest == ['--batch-size']
  assert parser.format_usage().split() == ['usage:', 'python', '-m', 'effnet_jax.test', '[-h]',
                                           '[--batch_size', 'BATCH_SIZE]', '[--flag]',
                                           '[rest', '...]']


def _run(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', *args], cwd=REPO, capture_output=True, text=True,
                        timeout=300)


def test_an_unknown_dashed_flag_is_reported_as_typed():
  done = _run('effnet_jax.tools.summary', '--model', 'efficientnet_b0', '--image-sise', '64')
  assert done.returncode == 2
  assert done.stderr.strip() == (
      'effnet_jax.tools.summary: error: unrecognized arguments: --image-sise 64')


def test_help_lists_the_underscore_spelling():
  done = _run('effnet_jax.predict', '--help')
  assert done.returncode == 0, done.stderr
  assert '--top_k TOP_K' in done.stdout and '--max_image_pixels' in done.stdout
  assert '--top-k' not in done.stdout and '--max-image-pixels' not in done.stdout


def test_evaluate_takes_both_spellings_of_image_sizes():
  for flag in ('--image_sizes', '--image-sizes'):
    done = _run('effnet_jax.evaluate', '--workdir', '.', f'{flag}=224,big')
    assert done.returncode == 2
    assert done.stderr.strip() == (
        'effnet_jax.evaluate: error: --image_sizes=224,big: not comma-separated integers')

"""Every command line's user errors, through the real command: one line on stderr, exit status 2,
no traceback, before any work (effnet_jax/cli.py)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISSING = 'no_such_dir/nothing'  # relative to the repository, where the commands run
# Where a command given a bad config could start training, the config's model does not exist
# either: a command that missed the error fails at once instead of training.

# A config file setting one key the schema lacks (line 8).
TYPO_CONFIG = '''from effnet_jax.config import base_config


def get_config(arg=None):
  del arg
  c = base_config()
  c.model = 'no_such_model'
  {typo}
  return c
'''


def run(module: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, capture_output=True,
                        text=True, timeout=300)


def user_error(done: subprocess.CompletedProcess, program: str) -> str:
  """The message of the one-line user error ``done`` reported."""
  assert done.returncode == 2, done.stderr
  assert 'Traceback' not in done.stderr
  lines = done.stderr.splitlines()
  assert len(lines) == 1, done.stderr
  assert lines[0].startswith(f'{program}: error: '), lines[0]
  return lines[0][len(f'{program}: error: '):]


@pytest.mark.parametrize('args, message', [
    (['--config', 'configs/nonexistent.py'], 'configs/nonexistent.py: no such config file'),
    (['--config', 'configs/rexnet.py:variant=100,data=imagnet'],
     "configs/rexnet.py: config argument data='imagnet'; valid values: "
     "('imagenet', 'embedded')"),
    (['--config', 'configs/efficientnet.py:variant=b9'],
     "configs/efficientnet.py: config argument variant='b9'; valid values: "
     "('b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7')"),
    (['--config', 'configs/default.py:data=imagenet', '--config.model=no_such_model'],
     "configs/default.py: unknown config argument 'data'; this config takes none"),
    (['--config.optimizer.learning_rat=0.1'],
     'unknown config key "learning_rat". Did you mean "base_learning_rate"?'),
    (['--config.batch_size=many'],
     "flag --config.batch_size=many: invalid literal for int() with base 10: 'many'"),
    (['--config.image_size=16'],
     'config key "image_size" has moved: set "input.image_size" instead'),
    (['--config.model_overrides.crop_fraction=1.0'],
     'config key "crop_fraction" has moved: set "input.crop_fraction" instead'),
    (['--workdr=x'], "Unknown command line flag 'workdr'. Did you mean: workdir ?"),
    (['stray'], 'unexpected arguments: stray'),
], ids=['missing_config', 'bad_config_argument', 'unknown_variant', 'argument_to_a_config_without',
        'unknown_key_flag', 'bad_flag_value', 'moved_key_flag', 'moved_override_flag',
        'unknown_flag', 'positional_argument'])
def test_main_command_line_errors(args, message, tmp_path):
  done = run('effnet_jax.main', '--workdir', str(tmp_path / 'run'), *args)
  assert user_error(done, 'effnet_jax') == message
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('typo, key, closest', [
    ('c.optimizer.learning_rat = 0.1', 'learning_rat', 'base_learning_rate'),
    ('c.optimizer.update(learning_rat=0.1)', 'learning_rat', 'base_learning_rate'),
    ("c.data.update(sorce='folder')", 'sorce', 'source'),
], ids=['attribute', 'update', 'nested_update'])
def test_main_refuses_a_config_file_setting_an_unknown_key(typo, key, closest, tmp_path):
  path = tmp_path / 'typo.py'
  path.write_text(TYPO_CONFIG.format(typo=typo))
  done = run('effnet_jax.main', '--config', str(path), '--workdir', str(tmp_path / 'run'))
  assert user_error(done, 'effnet_jax') == (
      f'{path}:8: unknown config key "{key}". Did you mean "{closest}"?')
  assert not (tmp_path / 'run').exists()


def test_a_python_error_in_a_config_file_is_one_line_and_verbosity_shows_its_traceback(
    tmp_path):
  path = tmp_path / 'broken.py'
  path.write_text(TYPO_CONFIG.format(typo='c.batch_size = batch'))
  message = f"{path}:8: NameError: name 'batch' is not defined"
  done = run('effnet_jax.main', '--config', str(path))
  assert user_error(done, 'effnet_jax') == message + ' (--verbosity=0 shows the traceback)'
  verbose = run('effnet_jax.main', '--config', str(path), '--verbosity=0')
  assert verbose.returncode == 2 and 'Traceback' in verbose.stderr
  assert f'File "{path}", line 8, in get_config' in verbose.stderr
  assert verbose.stderr.splitlines()[-1] == f'effnet_jax: error: {message}'


def test_a_syntax_error_in_a_config_file_names_file_and_line(tmp_path):
  path = tmp_path / 'syntax.py'
  path.write_text('def get_config(arg=None)\n  return None\n')
  done = run('effnet_jax.main', '--config', str(path))
  assert user_error(done, 'effnet_jax') == f"{path}:1: SyntaxError: expected ':'"


def test_ablate_refuses_an_ablation_config_setting_an_unknown_key(tmp_path):
  path = tmp_path / 'ablation.py'
  path.write_text(
      'from effnet_jax.analysis.configs import experiment\n'
      'from effnet_jax.analysis.trainer import small_train_config\n'
      '\n'
      '\n'
      'def get_config(arg=None):\n'
      "  config = experiment('no_such_experiment', 'typo', small_train_config())\n"
      '  config.train.optimizer.learning_rat = 0.1\n'
      '  return config\n')
  done = run('effnet_jax.tools.ablate', '--config', str(path), '--workdir', str(tmp_path / 'run'))
  assert user_error(done, 'effnet_jax.tools.ablate') == (
      f'{path}:7: unknown config key "learning_rat". Did you mean "base_learning_rate"?')


@pytest.mark.parametrize('module, args, message', [
    ('effnet_jax.tools.ablate', ['--config', 'configs/ablations/scaling.py:scale=huge',
                                 '--workdir', MISSING],
     "configs/ablations/scaling.py: config argument scale='huge'; valid values: "
     "('small', 'imagenet')"),
    ('effnet_jax.tools.ablate', ['--config', 'configs/ablations/scaling.py',
                                 '--config.phiss=1', '--workdir', MISSING],
     'unknown config key "phiss". Did you mean "phis"?'),
    ('effnet_jax.evaluate', ['--workdir', MISSING],
     f'--workdir {MISSING}: no such file or directory'),
    ('effnet_jax.evaluate', ['--workdir', '.', '--image_sizes=224,big'],
     '--image_sizes=224,big: not comma-separated integers'),
    ('effnet_jax.evaluate', ['--workdir', '.', '--bets'],
     "Unknown command line flag 'bets'. Did you mean: best ?"),
    ('effnet_jax.evaluate', ['--workdir', '.', '--weights', '.'],
     '--workdir and --weights exclude each other: evaluate a training run on its eval split, '
     'or weights on --folder/--tfds data'),
    ('effnet_jax.evaluate', ['--image_sizes', '224'],
     'give --workdir (a training run) or --weights (with --folder or --tfds)'),
    ('effnet_jax.evaluate', ['--weights', '.', '--folder', MISSING],
     f'--folder {MISSING}: no such file or directory'),
    ('effnet_jax.evaluate', ['--weights', '.', '--split', 'test'],
     '--weights evaluates on --folder DIR or --tfds NAME: give one'),
    ('effnet_jax.evaluate', ['--weights', MISSING, '--folder', '.'],
     f'--weights {MISSING}: no such file or directory'),
    ('effnet_jax.predict', ['--weights', MISSING, 'cat.jpg'],
     f'--weights {MISSING}: no such file or directory'),
    ('effnet_jax.predict', ['--weights', '.', '--top_k=all', 'cat.jpg'],
     "argument --top_k: invalid int value: 'all'"),
    ('effnet_jax.tools.convert', ['--source', 'timm', '--arch', 'tf_efficientnet_b0', '--input',
                                  MISSING, '--output', MISSING],
     f'--input {MISSING}: no such file or TF checkpoint'),
    ('effnet_jax.tools.export', ['--weights', MISSING, '--output', MISSING],
     f'--weights {MISSING}: no such file or directory'),
    ('effnet_jax.tools.summary', ['--model', 'efficientnet_b0', '--image_size', 'big'],
     "argument --image_size: invalid int value: 'big'"),
    ('effnet_jax.tools.benchmark', ['--bogus'], 'unrecognized arguments: --bogus'),
    ('effnet_jax.tools.benchmark_input', ['--folder', MISSING],
     f'--folder {MISSING}: no such file or directory'),
    ('effnet_jax.tools.prepare_data', ['--input', MISSING, '--output', MISSING],
     'the following arguments are required: --max_side'),
], ids=['ablate_bad_config_argument', 'ablate_unknown_key_flag', 'evaluate_missing_workdir',
        'evaluate_bad_flag_value', 'evaluate_unknown_flag', 'evaluate_workdir_and_weights',
        'evaluate_neither_workdir_nor_weights', 'evaluate_missing_folder',
        'evaluate_weights_without_data', 'evaluate_missing_weights', 'predict_missing_weights',
        'predict_bad_flag_value', 'convert_missing_input', 'export_missing_weights',
        'summary_bad_flag_value', 'benchmark_unknown_flag', 'benchmark_input_missing_folder',
        'prepare_data_missing_flag'])
def test_every_entry_point_reports_user_errors_in_one_line(module, args, message):
  assert user_error(run(module, *args), module) == message
  assert not os.path.exists(os.path.join(REPO, MISSING.split('/')[0]))

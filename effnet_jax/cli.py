"""What every command line shares: its user errors are one line and exit status 2.

A user error is what the command line itself gets wrong: an unknown flag, a flag value of the
wrong type, a missing required flag, an input path that does not exist, and for the commands
that read a config (``--config path[:arg]``) a config file that is missing, unreadable or broken,
a config argument it does not accept, or a key the schema lacks, set in the file or as
``--config.key=value``. Each prints ``PROGRAM: error: MESSAGE`` on stderr — one line, no
traceback, no usage block — and exits with status 2 before any work starts. For an exception
raised while running a config file (a bug rather than a typo, maybe) a ``--verbosity`` flag on
the command line prints its traceback too. What goes wrong later (data that cannot be read, a
diverged run) is the command's own business: exit status 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable, NoReturn

from absl import flags
from ml_collections.config_flags import config_flags

from effnet_jax.config import (ConfigFileError, error_message, load_config_file,
                               unknown_key_message)

EXIT_USAGE = 2
flags.disclaim_key_flags()  # the flags defined here belong to the entry point that asks for them

# What parsing the flags raises for a bad command line: absl's errors, config_flags' errors for a
# --config.key=value override (unknown key: KeyError / AttributeError), ConfigFileError.
FLAG_ERRORS = (AttributeError, KeyError, TypeError, ValueError, flags.Error, ConfigFileError)


def exit_on_user_error(program: str, error: BaseException | str) -> NoReturn:
  """Reports a user error in one line on stderr and exits with status 2.

  ``error``: a message, or the exception parsing the flags raised (config_flags' multi-line
  message for an unknown ``--config.key`` comes out as ``unknown config key "x". Did you mean
  "y"?``)."""
  message = error
  if isinstance(error, BaseException):
    text = error_message(error)
    message = unknown_key_message(text, flag=True) or ' '.join(text.split())
    if isinstance(error, ConfigFileError) and error.__cause__ is not None:
      # an exception raised while running the config file: maybe a bug, not a typo
      if _asks_for_traceback(sys.argv):
        traceback.print_exception(error.__cause__)
      else:
        message += ' (--verbosity=0 shows the traceback)'
  print(f'{program}: error: {message}', file=sys.stderr, flush=True)
  sys.exit(EXIT_USAGE)


def _asks_for_traceback(argv: list[str]) -> bool:
  """Whether the command line has absl's ``--verbosity`` (``-v``): read from argv, as the flags
  may fail to parse before it."""
  return any(arg.split('=', 1)[0] in ('--verbosity', '-verbosity', '-v', '--v')
             for arg in argv[1:])


class _ConfigFileParser(flags.ArgumentParser):
  """Parses ``--config path[:arg]`` with :func:`effnet_jax.config.load_config_file`."""

  def parse(self, argument):
    return load_config_file(argument)

  def flag_type(self):
    return 'config object'


def define_config_flag(program: str, default: str | None, help_string: str
                       ) -> flags.FlagHolder:
  """``--config``: ml_collections' ``DEFINE_config_file('config', default, lock_config=True)``
  (``--config.key=value`` overrides included) with the file read by ``load_config_file``, so
  a bad config file is a one-line error. config_flags reads the overrides of ``sys.argv`` while
  the flag is defined (and the default config when ``--config`` is absent), so a user error can
  end the program here."""
  try:
    # config_flags' own flag class with another parser: DEFINE_config_file takes no parser
    # (ml-collections is pinned in requirements.txt).
    flag = config_flags._ConfigFlag(  # pylint: disable=protected-access
        parser=_ConfigFileParser(), serializer=flags.ArgumentSerializer(), name='config',
        default=default, help_string=help_string)
    return flags.DEFINE_flag(flag)
  except FLAG_ERRORS as error:
    exit_on_user_error(program, error)


def flags_parser(program: str) -> Callable[[list[str]], list[str]]:
  """``app.run``'s ``flags_parser`` for a command without positional arguments: a bad command
  line is a one-line user error."""

  def parse(argv: list[str]) -> list[str]:
    try:
      rest = flags.FLAGS(argv)
    except FLAG_ERRORS as error:
      exit_on_user_error(program, error)
    if len(rest) > 1:
      exit_on_user_error(program, f'unexpected arguments: {" ".join(rest[1:])}')
    return rest

  return parse


def check_exists(program: str, flag: str, path: str) -> None:
  """An input path given on the command line must exist (a ``gs://`` or other remote path is
  left to the reader)."""
  if '://' not in path and not os.path.exists(path):
    exit_on_user_error(program, f'{flag} {path}: no such file or directory')


def require_extra(program: str, module: str, what: str) -> None:
  """``what`` needs ``module`` of the interop extras (torch, timm, scikit-image, ...): a one-line
  error saying how to install them when it is missing."""
  import importlib
  try:
    importlib.import_module(module)
  except ImportError:
    exit_on_user_error(program, f'{what} needs {module.split(".")[0]}, one of the interop extras: '
                       'launch/setup.sh --interop (or pip install "effnet_jax[interop]")')


def check_weights(program: str, flag: str, spec: str) -> None:
  """A weights flag names a local path that exists, ``hf-hub:ORG/REPO`` or a pretrained tag
  (effnet_jax.hub; fetched and converted when read)."""
  from effnet_jax import hub
  if not hub.is_spec(spec):
    check_exists(program, flag, spec)


def underscored(option: str) -> str:
  """A long option's documented spelling: ``--batch-size`` -> ``--batch_size`` (short options and
  positional names are left alone)."""
  return '--' + option[2:].replace('-', '_') if option.startswith('--') else option


class _BooleanOptionalAction(argparse.BooleanOptionalAction):
  """``--flag`` / ``--no_flag`` (argparse's own action spells the negation ``--no-flag``)."""

  def __init__(self, option_strings, dest, **kwargs):
    super().__init__(option_strings, dest, **kwargs)
    self.option_strings = [underscored(option) for option in self.option_strings]

  def __call__(self, parser, namespace, values, option_string=None):
    if option_string in self.option_strings:
      setattr(namespace, self.dest, not option_string.startswith('--no_'))


def _underscore_options(container) -> None:
  """Makes ``container.add_argument`` (a parser's or a group's) register every long option under
  its underscore spelling."""
  add_argument = container.add_argument

  def add(*names, **kwargs):
    if kwargs.get('action') is argparse.BooleanOptionalAction:
      kwargs['action'] = _BooleanOptionalAction
    return add_argument(*map(underscored, names), **kwargs)

  container.add_argument = add


class ArgumentParser(argparse.ArgumentParser):
  """argparse for ``python -m PROGRAM``, whose errors (unknown or missing arguments, bad values,
  ``parser.error``) are one-line user errors; ``--help`` prints the usage.

  One flag spelling for every command line: a long option is registered, shown in ``--help``
  and named in errors with underscores (``--batch_size``), as absl's flags and ml_collections'
  ``--config.key`` are, whichever way ``add_argument`` spells it. The dashed spelling
  (``--batch-size``, ``--no-timm-compile``) is accepted too, unlisted, for the command lines
  written before."""

  def __init__(self, program: str, **kwargs):
    super().__init__(prog=f'python -m {program}', **kwargs)
    self.program = program
    _underscore_options(self)

  def add_argument_group(self, *args, **kwargs):
    group = super().add_argument_group(*args, **kwargs)
    _underscore_options(group)
    return group

  def add_mutually_exclusive_group(self, **kwargs):
    group = super().add_mutually_exclusive_group(**kwargs)
    _underscore_options(group)
    return group

  def parse_known_args(self, args=None, namespace=None):
    args = sys.argv[1:] if args is None else list(args)
    if '--' in args:  # what follows '--' is positional
      end = args.index('--')
      args = [self._documented(arg) for arg in args[:end]] + args[end:]
    else:
      args = [self._documented(arg) for arg in args]
    return super().parse_known_args(args, namespace)

  def _documented(self, arg: str) -> str:
    """``arg`` with a dashed long option (``--batch-size=8``) in its underscore spelling where that
    names one of this parser's options (or, argparse's abbreviations, begins one)."""
    if not isinstance(arg, str) or not arg.startswith('--'):
      return arg
    option, equals, value = arg.partition('=')
    if option in self._option_string_actions or '-' not in option[2:]:
      return arg
    spelling = underscored(option)
    known = self._option_string_actions
    if spelling in known or (self.allow_abbrev and any(name.startswith(spelling)
                                                       for name in known)):
      return spelling + equals + value
    return arg

  def error(self, message: str) -> NoReturn:
    exit_on_user_error(self.program, message)

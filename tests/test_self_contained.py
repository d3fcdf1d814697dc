"""The repository is self-contained: no tracked file points to documents outside it.

Facts the code relies on are documented under docs/ (docs/reference.md for architectures,
published numbers, recipes and weight names); a path that leaves the checkout is a dead link for
every user.
"""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Built from pieces so that this file does not match itself.
FORBIDDEN = ('shared' + '/reference', '..' + '/shared')


def tracked_files() -> list[pathlib.Path]:
  if shutil.which('git') is None or not (ROOT / '.git').exists():
    pytest.skip('not a git checkout')
  out = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, check=True)
  return [ROOT / name for name in out.stdout.decode().split('\0') if name]


def test_no_tracked_file_points_outside_the_repository():
  offenders = []
  for path in tracked_files():
    if not path.is_file():
      continue
    try:
      text = path.read_text(encoding='utf-8')
    except UnicodeDecodeError:
      continue  # binary files (images, checkpoints) carry no links
    for lineno, line in enumerate(text.splitlines(), 1):
      if any(pattern in line for pattern in FORBIDDEN):
        offenders.append(f'{path.relative_to(ROOT)}:{lineno}: {line.strip()[:120]}')
  assert not offenders, ('paths outside the repository (document the facts under docs/ '
                         'instead):\n' + '\n'.join(offenders))

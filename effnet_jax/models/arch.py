"""Architectures as data: block strings, rounding rules and compound scaling.

A block string describes one stage entry, e.g. ``ir_r2_k3_s2_e6_c24_se0.25``:

=========  ===================================================================
token      meaning
=========  ===================================================================
``ir``     block type, registered by the module that defines the block
           (:func:`register_block_type`): ``ir`` MBConv (inverted residual; expand 1 =
           no expansion conv), ``fu`` Fused-MBConv, ``lb`` ReXNet linear bottleneck
``r2``     repeats (before depth scaling)
``k3``     kernel size of the depthwise (``ir``, ``lb``) or fused (``fu``) conv
``s2``     stride of the first block of the entry
``e6``     expansion ratio
``c24``    output channels (before width scaling)
``se0.25`` squeeze-excitation ratio, exact (``se1/12`` is allowed). ``ir``/``fu``:
           relative to the block *input* channels (EfficientNet); ``lb``: relative
           to the expanded channels, floor division (ReXNet)
``noskip`` no residual connection even where shapes allow one
=========  ===================================================================

An architecture is a tuple of stages, each a tuple of block strings. Decoding with
a width and depth multiplier (:func:`decode_arch`) yields one resolved
:class:`BlockSpec` per block, with final channel counts, so the Flax modules never
do arithmetic on channel numbers.
"""
from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction
from typing import Sequence



@dataclasses.dataclass(frozen=True)
class BlockType:
  """How :func:`decode_arch` resolves the blocks of one block-type token."""
  # squeeze-excitation width from the expanded channels (ReXNet), else from the block input
  se_of_expanded: bool = False
  # residual also where the block widens (the input is added to the first input-width channels)
  partial_residual: bool = False


# token -> rules; the families add theirs with register_block_type (effnet_jax.models.blocks
# registers the Flax module beside it)
BLOCK_TYPES: dict[str, BlockType] = {'ir': BlockType(), 'fu': BlockType()}


def register_block_type(token: str, rules: BlockType = BlockType()) -> BlockType:
  """Makes ``token`` a valid block type of block strings."""
  if token in BLOCK_TYPES and BLOCK_TYPES[token] != rules:
    raise ValueError(f'block type {token!r} registered twice with other rules')
  if not re.fullmatch('[a-z]+', token):
    raise ValueError(f'block type {token!r}: expected lowercase letters')
  BLOCK_TYPES[token] = rules
  return rules

# EfficientNet compound-scaling constants (paper, Sec. 3.3): depth α, width β, resolution γ.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


@dataclasses.dataclass(frozen=True)
class BlockArgs:
  """One decoded block-string entry (before width/depth scaling)."""
  block_type: str
  repeats: int
  kernel_size: int
  stride: int
  expand_ratio: int
  out_channels: int
  se_ratio: Fraction | None = None
  skip: bool = True

  def to_string(self) -> str:
    s = (f'{self.block_type}_r{self.repeats}_k{self.kernel_size}_s{self.stride}'
         f'_e{self.expand_ratio}_c{self.out_channels}')
    if self.se_ratio:
      as_decimal = f'{float(self.se_ratio):g}'
      s += f'_se{as_decimal}' if Fraction(as_decimal) == self.se_ratio else f'_se{self.se_ratio}'
    if not self.skip:
      s += '_noskip'
    return s


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  """A fully resolved block: the exact channel numbers one Flax block is built with."""
  block_type: str
  in_channels: int
  out_channels: int
  kernel_size: int
  stride: int
  expand_ratio: int
  se_channels: int  # 0 = no squeeze-excitation
  skip: bool  # residual connection present
  drop_path_rate: float = 0.0

  @property
  def mid_channels(self) -> int:
    return self.in_channels * self.expand_ratio


_TOKEN = re.compile(r'^([a-z]+)(.*)$')


def decode_block_string(block_string: str) -> BlockArgs:
  """Parses ``ir_r2_k3_s2_e6_c24_se0.25`` into :class:`BlockArgs`.

  Raises:
    ValueError: naming the offending token for any malformed string.
  """
  tokens = block_string.split('_')
  block_type = tokens[0]
  if block_type not in BLOCK_TYPES:
    raise ValueError(f'block string {block_string!r}: unknown block type {block_type!r}; '
                     f'expected one of {tuple(BLOCK_TYPES)}')
  values: dict[str, str] = {}
  skip = True
  for token in tokens[1:]:
    if token == 'noskip':
      skip = False
      continue
    match = _TOKEN.match(token)
    key, value = (match.group(1), match.group(2)) if match else (token, '')
    if key not in ('r', 'k', 's', 'e', 'c', 'se') or not value:
      raise ValueError(f'block string {block_string!r}: cannot parse token {token!r}')
    if key in values:
      raise ValueError(f'block string {block_string!r}: token {key!r} given twice')
    values[key] = value
  missing = [k for k in ('r', 'k', 's', 'e', 'c') if k not in values]
  if missing:
    raise ValueError(f'block string {block_string!r}: missing tokens {missing}')
  try:
    ints = {k: int(values[k]) for k in ('r', 'k', 's', 'e', 'c')}
    se_ratio = Fraction(values['se']) if 'se' in values else None
  except ValueError as e:
    raise ValueError(f'block string {block_string!r}: {e}') from None
  if min(ints.values()) < 1:
    raise ValueError(f'block string {block_string!r}: r, k, s, e, c must be >= 1')
  if se_ratio is not None and not 0 < se_ratio <= 1:
    raise ValueError(f'block string {block_string!r}: se ratio must be in (0, 1]')
  return BlockArgs(block_type=block_type, repeats=ints['r'], kernel_size=ints['k'],
                   stride=ints['s'], expand_ratio=ints['e'], out_channels=ints['c'],
                   se_ratio=se_ratio or None, skip=skip)


def round_filters(filters: float, width_mult: float, divisor: int = 8,
                  min_depth: int | None = None, round_limit: float = 0.9) -> int:
  """Scales and rounds a channel count to a multiple of ``divisor``.

  ``round_limit=0.9`` is EfficientNet V1's "10 % rule" (bump up by one divisor if
  rounding lost more than 10 %); EfficientNetV2 uses ``round_limit=0`` (no rule).
  """
  scaled = filters * width_mult
  min_depth = min_depth or divisor
  new = max(min_depth, int(scaled + divisor / 2) // divisor * divisor)
  if new < round_limit * scaled:
    new += divisor
  return int(new)


def round_repeats(repeats: int, depth_mult: float) -> int:
  """Depth scaling of one stage: ``ceil(depth_mult * repeats)``."""
  return int(math.ceil(depth_mult * repeats))


def compound_coefficients(phi: float, alpha: float = ALPHA, beta: float = BETA,
                          gamma: float = GAMMA) -> tuple[float, float, float]:
  """(width, depth, resolution) multipliers ``(β^φ, α^φ, γ^φ)``; any real φ, also < 0."""
  return beta ** phi, alpha ** phi, gamma ** phi


def scaled_resolution(base_resolution: int, resolution_mult: float, multiple: int = 1) -> int:
  """Rounds ``base_resolution * resolution_mult`` to the nearest ``multiple``."""
  return max(multiple, int(round(base_resolution * resolution_mult / multiple)) * multiple)


def _se_channels(args: BlockArgs, in_channels: int, mid_channels: int) -> int:
  if not args.se_ratio:
    return 0
  if BLOCK_TYPES[args.block_type].se_of_expanded:  # ReXNet: floor(expanded * ratio)
    return max(1, math.floor(mid_channels * args.se_ratio))
  return max(1, math.floor(in_channels * args.se_ratio))  # EfficientNet: int(input * ratio)


def decode_arch(stages: Sequence[Sequence[str]], stem_channels: int, width_mult: float = 1.0,
                depth_mult: float = 1.0, round_limit: float = 0.9, divisor: int = 8,
                fix_first_last_repeats: bool = False, round_channels: bool = True,
                drop_path_rate: float = 0.0) -> tuple[tuple[BlockSpec, ...], ...]:
  """Expands stage block strings into resolved blocks.

  Args:
    stages: one tuple of block strings per stage.
    stem_channels: actual stem output width (input of the first block).
    width_mult, depth_mult: scaling multipliers.
    round_limit, divisor: :func:`round_filters` parameters (V1: 0.9, V2: 0).
    fix_first_last_repeats: EfficientNet-Lite: first and last stage keep their repeats.
    round_channels: False for architectures whose block strings already hold final
      widths (ReXNet's linear schedule is generated pre-rounded).
    drop_path_rate: stochastic-depth rate; block ``i`` of ``N`` gets ``rate * i / N``.

  Returns:
    A tuple per stage of :class:`BlockSpec`, one per block.
  """
  decoded = [[decode_block_string(s) for s in stage] for stage in stages]
  resolved: list[list[tuple[BlockArgs, int, int, int]]] = []
  in_channels = stem_channels
  for stage_idx, stage in enumerate(decoded):
    blocks = []
    for args in stage:
      fixed = fix_first_last_repeats and stage_idx in (0, len(decoded) - 1)
      repeats = args.repeats if fixed else round_repeats(args.repeats, depth_mult)
      out_channels = (round_filters(args.out_channels, width_mult, divisor,
                                    round_limit=round_limit)
                      if round_channels else args.out_channels)
      for j in range(repeats):
        blocks.append((args, in_channels, out_channels, args.stride if j == 0 else 1))
        in_channels = out_channels
    resolved.append(blocks)

  num_blocks = sum(len(s) for s in resolved)
  index = 0
  out: list[tuple[BlockSpec, ...]] = []
  for blocks in resolved:
    specs = []
    for args, cin, cout, stride in blocks:
      mid = cin * args.expand_ratio
      if BLOCK_TYPES[args.block_type].partial_residual:
        skip = args.skip and stride == 1 and cin <= cout
      else:
        skip = args.skip and stride == 1 and cin == cout
      specs.append(BlockSpec(
          block_type=args.block_type, in_channels=cin, out_channels=cout,
          kernel_size=args.kernel_size, stride=stride, expand_ratio=args.expand_ratio,
          se_channels=_se_channels(args, cin, mid), skip=skip,
          drop_path_rate=drop_path_rate * index / num_blocks))
      index += 1
    out.append(tuple(specs))
  return tuple(out)

"""Networks found by the architecture searches, registered so that ``--config.model=<name>``
(and ``create_model``, ``summary``, ``tools.convert`` ...) take them like any zoo model.

Each is the best candidate of the documented small-scale run of its search (docs/ablations.md,
'Architecture searches'), searched on the embedded Fashion-MNIST at 32 px on a 2-core CPU: the
output of the search procedure at laptop scale, not an ImageNet architecture. Sizes (train and
eval 32 px) are the search's. A search of one's own writes model files (``best*.json`` in its
work directory) that ``--config.model=PATH`` takes directly; registering one here makes it a
name.
"""
from __future__ import annotations

import dataclasses

from effnet_jax.models.registry import get_model_config, register

# name -> (base model, overrides, where it comes from)
SEARCHED = {
    'rexnet_search_fmnist_060': (
        'rexnet_100',
        dict(width_mult=0.5, depth_mult=0.5, stages=(
            ('lb_r1_k3_s1_e1_c13',), ('lb_r1_k3_s2_e6_c17',), ('lb_r1_k3_s2_e6_c23_se1/12',),
            ('lb_r1_k3_s2_e6_c30_se1/12', 'lb_r1_k3_s1_e6_c37_se1/12'),
            ('lb_r1_k3_s1_e6_c44_se1/12', 'lb_r1_k3_s1_e6_c51_se1/12'),
            ('lb_r1_k3_s2_e6_c54_se1/12', 'lb_r1_k3_s1_e6_c58_se1/12',
             'lb_r1_k3_s1_e6_c62_se1/12'))),
        'configs/ablations/rexnet_search.py: the most accurate of 6 channel configurations at '
        '0.6x the MACs of ReXNet (width 0.5, depth 0.5) at 32 px'),
    'rexnet_search_fmnist_100': (
        'rexnet_100',
        dict(width_mult=0.5, depth_mult=0.5, stages=(
            ('lb_r1_k3_s1_e1_c19',), ('lb_r1_k3_s2_e6_c26',), ('lb_r1_k3_s2_e6_c33_se1/12',),
            ('lb_r1_k3_s2_e6_c40_se1/12', 'lb_r1_k3_s1_e6_c47_se1/12'),
            ('lb_r1_k3_s1_e6_c54_se1/12', 'lb_r1_k3_s1_e6_c61_se1/12'),
            ('lb_r1_k3_s2_e6_c68_se1/12', 'lb_r1_k3_s1_e6_c75_se1/12',
             'lb_r1_k3_s1_e6_c88_se1/12'))),
        'configs/ablations/rexnet_search.py: the most accurate of 6 channel configurations at '
        '1.0x the MACs of ReXNet (width 0.5, depth 0.5) at 32 px'),
    'efficientnetv2_nas_fmnist': (
        'efficientnetv2_b0',
        dict(width_mult=1.0, depth_mult=1.0, stem_channels=16, head_channels=792, stages=(
            ('fu_r1_k3_s1_e4_c8',), ('fu_r1_k5_s2_e4_c16',), ('fu_r1_k5_s2_e1_c32',),
            ('ir_r2_k5_s2_e4_c56_se0.25',), ('fu_r2_k5_s1_e1_c72',), ('fu_r3_k3_s2_e1_c120',))),
        'configs/ablations/v2_nas.py: the best reward of 12 candidates over the stages of '
        'EfficientNetV2-B0 at phi -5 (32 px)'),
}

for _name, (_base, _overrides, _source) in SEARCHED.items():
  register(dataclasses.replace(get_model_config(_base, **_overrides), name=_name,
                               image_size=32, eval_image_size=32))

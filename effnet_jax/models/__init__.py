"""The model zoo: EfficientNet / EfficientNetV2 / EfficientNet-Lite / ReXNet and the networks
the papers compare with (MobileNetV2, ResNet, Swin Transformer).

One module per family registers the family and its models (in this order: list_models()).
"""
from effnet_jax.models import efficientnet as _efficientnet  # noqa: F401  (registers models)
from effnet_jax.models import efficientnet_lite as _efficientnet_lite  # noqa: F401
from effnet_jax.models import efficientnetv2 as _efficientnetv2  # noqa: F401
from effnet_jax.models import rexnet as _rexnet  # noqa: F401
from effnet_jax.models import mobilenetv2 as _mobilenetv2  # noqa: F401
from effnet_jax.models import resnet as _resnet  # noqa: F401
from effnet_jax.models import swin as _swin  # noqa: F401
from effnet_jax.models import searched as _searched  # noqa: F401  (after the bases)
from effnet_jax.models.arch import (BlockSpec, compound_coefficients, decode_arch,
                                    decode_block_string, round_filters, round_repeats)
from effnet_jax.models.network import EfficientNet, FeatureInfo
from effnet_jax.models.registry import (Family, ModelConfig, build_model, compound_scale,
                                        create_model, feature_info, get_family, get_model_config,
                                        list_families, list_models, register, register_family)
from effnet_jax.models.utils import count_macs, count_params, extract_features

__all__ = [
    'BlockSpec', 'EfficientNet', 'FeatureInfo', 'Family', 'ModelConfig', 'build_model', 'compound_coefficients',
    'compound_scale', 'count_macs', 'count_params', 'create_model', 'decode_arch',
    'decode_block_string', 'extract_features', 'feature_info', 'get_family', 'get_model_config',
    'list_families', 'list_models', 'register', 'register_family',
    'round_filters', 'round_repeats',
]

"""The EfficientNet / EfficientNetV2 / EfficientNet-Lite / ReXNet model zoo."""
from effnet_jax.models import efficientnet as _efficientnet  # noqa: F401  (registers models)
from effnet_jax.models import rexnet as _rexnet  # noqa: F401  (registers models)
from effnet_jax.models.arch import (BlockSpec, compound_coefficients, decode_arch,
                                    decode_block_string, round_filters, round_repeats)
from effnet_jax.models.network import EfficientNet
from effnet_jax.models.registry import (ModelConfig, build_model, compound_scale, create_model,
                                        get_model_config, list_models)
from effnet_jax.models.utils import count_macs, count_params, extract_features

__all__ = [
    'BlockSpec', 'EfficientNet', 'ModelConfig', 'build_model', 'compound_coefficients',
    'compound_scale', 'count_macs', 'count_params', 'create_model', 'decode_arch',
    'decode_block_string', 'extract_features', 'get_model_config', 'list_models',
    'round_filters', 'round_repeats',
]

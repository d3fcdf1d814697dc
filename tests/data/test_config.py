"""Validation of DataConfig and Preprocessing."""
import pytest

from effnet_jax.data import DataConfig, Preprocessing


@pytest.mark.parametrize('field, value', [
    ('source', 'hub'), ('on_bad_image', 'ignore'), ('shuffle_buffer', 0),
    ('max_image_pixels', 0), ('data_dir', ''), ('manual_dir', ''), ('train_folder', ''),
    ('eval_folder', '')])
def test_data_config_rejects(field, value):
  with pytest.raises(ValueError, match=field):
    DataConfig(**{field: value})


@pytest.mark.parametrize('field, value', [
    ('crop_mode', 'resize'), ('interpolation', 'nearest'), ('train_crop', 'random'),
    ('augment', 'trivialaugment'), ('crop_fraction', 1.5), ('mean', (0.5,))])
def test_preprocessing_rejects(field, value):
  with pytest.raises(ValueError, match=field):
    Preprocessing(image_size=32, eval_image_size=32, **{field: value})


def test_defaults_are_the_contract():
  assert DataConfig() == DataConfig(source='embedded', name='fashion_mnist', train_split='train',
                                    eval_split='test', shuffle_buffer=16384, cache=False,
                                    on_bad_image='error', max_image_pixels=178_956_970)
  prep = Preprocessing(image_size=224, eval_image_size=224)
  assert (prep.crop_fraction, prep.interpolation, prep.train_crop, prep.augment) == (
      0.875, 'bicubic', 'inception', 'none')
  assert (prep.area_range, prep.min_object_covered, prep.randaug_magnitude) == (
      (0.08, 1.0), 0.1, 10.0)

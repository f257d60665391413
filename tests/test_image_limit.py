"""The processing-size limit: huge images are refused at native size with the limit named, never run out of memory."""

import pytest

from marigold import InputError
from marigold.core import image as img


def test_native_processing_of_a_6000x4000_image_is_refused_with_the_limit():
    with pytest.raises(InputError, match=rf"at most {img.MAX_PROCESSING_SIDE} pixels.*768"):
        img.processing_size((4000, 6000), 0)


def test_a_6000x4000_image_at_the_default_resolution_is_processed_smaller():
    assert img.processing_size((4000, 6000), 768) == (512, 768)
    assert img.processing_size((4000, 6000), img.MAX_PROCESSING_SIDE) == (1365, 2048)


def test_an_image_smaller_than_8_pixels_is_refused_even_when_it_would_be_upsampled():
    with pytest.raises(InputError, match="1×1 is too small.*at least 8 pixels"):
        img.processing_size((1, 1), 768)

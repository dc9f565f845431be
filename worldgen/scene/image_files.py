"""Opening image files people hand worldgen (inputs, masks, scene layers) without trusting their headers.

A PNG of a few kilobytes can claim 60000x60000 pixels (a decompression bomb): decoding it would take
gigabytes. The size in the header is checked against ``validation.MAX_DECODE_PIXELS`` before any
pixel is decoded, and Pillow's own bomb error (its limit is higher) becomes the same one-line error.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from ..errors import UserInputError
from ..validation import check_decode_size


@contextlib.contextmanager
def open_image(source, what: str, fix: str, error: type = UserInputError, kind: str = "image") -> Iterator:
    """``with open_image(path_or_file, "mask image", "give a black-and-white PNG") as img:`` a PIL
    image whose size is known to be decodable; unreadable files raise ``UserInputError``
    ("``what`` is not readable (...); ``fix``"). ``what`` should name the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as img:
            try:
                check_decode_size(img.width, img.height, what)
            except UserInputError as exc:
                raise error(str(exc)) from None
            yield img
    except FileNotFoundError:
        raise error(f"{what} does not exist; {fix}") from None
    except Image.DecompressionBombError:
        raise error(f"{what} claims more pixels than worldgen decodes (a decompression bomb?); "
                             f"{fix}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow reports damaged files as OSError, ValueError, SyntaxError or EOFError by format.
        text = " ".join(str(exc).split())[:200]
        raise error(f"{what} is not a readable {kind} ({text}); {fix}") from None

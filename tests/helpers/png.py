"""``png_shape``: check a file is a PNG with something drawn in it; return its size."""

import matplotlib.image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_shape(path) -> tuple[int, int]:
    """(height, width) in pixels of a PNG file, after checking it is a non-blank PNG."""
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC, f"{path} is not a PNG file"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.std() > 0, f"{path} is blank"
    return image.shape[:2]

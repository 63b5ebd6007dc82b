"""detectors.images.load_image on the image files a crawl turns up (all generated in tmp_path)."""
import io

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from detectors import images as images_mod  # noqa: E402
from detectors.images import ImageError, LoadedImage, load_image  # noqa: E402


def _photo(size=(96, 64)):
    skdata = pytest.importorskip("skimage.data")
    return Image.fromarray(skdata.astronaut()).resize(size)


def _check(li: LoadedImage, w: int, h: int) -> None:
    assert isinstance(li, LoadedImage)
    assert li.array.dtype == np.uint8 and li.array.shape == (h, w, 3)
    assert li.array.flags.c_contiguous and li.array.flags.writeable
    assert li.size == (w, h) == (li.width, li.height)


def test_rgb_jpeg_path_and_pil(tmp_path):
    p = tmp_path / "photo.jpg"
    _photo().save(p, quality=90)
    li = load_image(p)
    _check(li, 96, 64)
    assert li.flags == {} and li.source == str(p)
    li2 = load_image(str(p))
    assert np.array_equal(li.array, li2.array)
    li3 = load_image(Image.open(p))
    assert np.array_equal(li.array, li3.array)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_jpeg_follows_orientation(tmp_path, orientation):
    # stored image 60 wide x 40 high, a red block near the stored top-left corner
    stored = np.full((40, 60, 3), 255, np.uint8)
    stored[4:16, 4:16] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"rot{orientation}.jpg"
    Image.fromarray(stored).save(p, exif=exif, quality=95)

    li = load_image(p)
    _check(li, 40, 60)  # sides swapped: the coordinates are those of the transposed image
    assert li.flags["exif_orientation"] == orientation
    a = li.array.astype(int)
    red = (a[..., 0] > 180) & (a[..., 1] < 80) & (a[..., 2] < 80)
    ys, xs = np.nonzero(red)
    cx, cy = xs.mean(), ys.mean()
    # stored centre (9.5, 9.5); orientation 6 = rotate 90° clockwise: (x, y) -> (H-1-y, x);
    # orientation 8 = rotate 90° counter-clockwise: (x, y) -> (y, W-1-x)
    expect = (40 - 1 - 9.5, 9.5) if orientation == 6 else (9.5, 60 - 1 - 9.5)
    assert abs(cx - expect[0]) < 1.5 and abs(cy - expect[1]) < 1.5
    # a PIL image carrying the same EXIF tag is transposed too
    li_pil = load_image(Image.open(p))
    assert li_pil.size == (40, 60) and np.array_equal(li_pil.array, li.array)


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(p, quality=95)  # pure red in CMYK
    li = load_image(p)
    _check(li, 32, 24)
    assert li.flags["converted_from"] == "CMYK"
    r, g, b = li.array[12, 16].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_16bit_png(tmp_path):
    a = np.zeros((10, 12), np.uint16)
    a[:, :6] = 65535
    a[:, 6:] = 32896  # 128 * 257
    p = tmp_path / "depth16.png"
    Image.fromarray(a).save(p)
    assert Image.open(p).mode == "I;16"
    li = load_image(p)
    _check(li, 12, 10)
    assert li.flags["converted_from"] == "I;16"
    assert (li.array[:, :6] == 255).all() and (li.array[:, 6:] == 128).all()


def test_rgba_png_composited_on_white(tmp_path):
    a = np.zeros((8, 9, 4), np.uint8)
    a[:, :3] = (255, 0, 0, 0)  # fully transparent red -> white
    a[:, 3:6] = (0, 0, 255, 255)  # opaque blue stays blue
    a[:, 6:] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    p = tmp_path / "alpha.png"
    Image.fromarray(a, "RGBA").save(p)
    li = load_image(p)
    _check(li, 9, 8)
    assert li.flags["converted_from"] == "RGBA" and li.flags["alpha"] == "composited_on_white"
    assert (li.array[:, :3] == 255).all()
    assert (li.array[:, 3:6] == (0, 0, 255)).all()
    assert np.abs(li.array[:, 6:].astype(int) - 127).max() <= 1


def test_grayscale_palette_and_la(tmp_path):
    g = tmp_path / "gray.png"
    Image.fromarray(np.tile(np.arange(16, dtype=np.uint8)[None] * 16, (5, 1)), "L").save(g)
    li = load_image(g)
    _check(li, 16, 5)
    assert li.flags["converted_from"] == "L"
    assert (li.array[..., 0] == li.array[..., 1]).all() and li.array[0, 3, 0] == 48

    pal = Image.new("P", (6, 4))
    pal.putpalette([0, 255, 0] + [0, 0, 0] * 255)
    pal.save(tmp_path / "pal.gif")
    li = load_image(tmp_path / "pal.gif")
    _check(li, 6, 4)
    assert li.flags["converted_from"] == "P" and (li.array == (0, 255, 0)).all()

    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal_t.png", transparency=0)
    li = load_image(tmp_path / "pal_t.png")
    assert li.flags["alpha"] == "composited_on_white" and (li.array == 255).all()

    la = Image.new("LA", (3, 3), (0, 0))
    la.save(tmp_path / "la.png")
    li = load_image(tmp_path / "la.png")
    assert li.flags["converted_from"] == "LA" and (li.array == 255).all()


def test_tiny_and_large_images(tmp_path):
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "tiny.png")
    li = load_image(tmp_path / "tiny.png")
    _check(li, 8, 8)
    assert (li.array == (10, 20, 30)).all()

    Image.new("RGB", (10000, 200), (1, 2, 3)).save(tmp_path / "wide.png")
    li = load_image(tmp_path / "wide.png")
    _check(li, 10000, 200)


def test_size_limit_is_ours_not_pils(tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    Image.new("L", (3000, 100)).save(p)
    # PIL's own guard, set low, must not fire: the loader replaces it with MAX_IMAGE_PIXELS
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    li = load_image(p)
    assert li.size == (3000, 100)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after the open
    monkeypatch.setattr(images_mod, "MAX_IMAGE_PIXELS", 250_000)
    with pytest.raises(ImageError, match=r"big\.png.*3000x100 = 300,000 pixels.*above the limit"):
        load_image(p)
    with pytest.raises(ImageError, match="above the limit"):
        load_image(np.zeros((600, 600, 3), np.uint8))
    assert images_mod.MAX_IMAGE_PIXELS == 250_000
    monkeypatch.undo()
    assert images_mod.MAX_IMAGE_PIXELS == 20_000 * 20_000


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    _photo((200, 150)).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as ei:
        load_image(p)
    msg = str(ei.value)
    assert str(p) in msg and "truncated" in msg and "JPEG" in msg
    assert ei.value.source == str(p)
    assert isinstance(ei.value, ValueError)


def test_corrupt_header(tmp_path):
    p = tmp_path / "bad.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(256)) * 4)
    with pytest.raises(ImageError, match=r"bad\.jpg"):
        load_image(p)


def test_zero_byte_text_missing_and_directory(tmp_path):
    z = tmp_path / "empty.jpg"
    z.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg: file is empty \(0 bytes\)"):
        load_image(z)
    t = tmp_path / "notes.txt"
    t.write_text("this is not an image\n")
    with pytest.raises(ImageError, match=r"notes\.txt: not a recognised image format"):
        load_image(t)
    with pytest.raises(ImageError, match=r"nope\.png: file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_numpy_arrays():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    li = load_image(gray)
    _check(li, 4, 3)
    assert (li.array[..., 2] == gray).all() and li.flags["converted_from"] == "L"

    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    li = load_image(rgb)
    _check(li, 7, 5)
    assert np.array_equal(li.array, rgb) and li.flags == {}

    rgba = np.zeros((2, 2, 4), np.uint8)
    assert (load_image(rgba).array == 255).all()

    u16 = np.full((2, 3), 65535, np.uint16)
    assert (load_image(u16).array == 255).all()

    f = np.full((2, 3, 3), 0.5, np.float32)
    li = load_image(f)
    assert (li.array == 128).all() and li.flags["converted_from"] == "float32"
    assert (load_image(np.full((2, 2), 200.0)).array == 200).all()
    assert (load_image(np.ones((2, 2, 1), bool)).array == 255).all()

    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((2, 2, 3), np.nan))
    with pytest.raises(ImageError, match="channels-first"):
        load_image(np.zeros((3, 10, 12), np.uint8))
    with pytest.raises(ImageError, match="HxW"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError, match="no pixels"):
        load_image(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ImageError, match="expected \\[0, 1\\] or \\[0, 255\\]"):
        load_image(np.full((2, 2), -3.0))
    with pytest.raises(ImageError, match="unsupported image source"):
        load_image(12345)


def test_pil_modes_in_memory():
    li = load_image(Image.new("I", (4, 2), 1000))
    assert li.flags["converted_from"] == "I" and (li.array == 4).all()  # 1000 * 255 / 65535
    li = load_image(Image.new("F", (4, 2), 0.25))
    assert (li.array == 64).all()
    li = load_image(Image.new("1", (4, 2), 1))
    assert (li.array == 255).all()

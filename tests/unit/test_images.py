"""qvq_sdk._images: every kind of image source → checked bytes, filename and mime type."""

import base64
import io
import pathlib
from urllib.parse import quote_from_bytes

import pytest
from image_samples import BMP, GIF, JPEG, PNG, SAMPLES, WEBP

from qvq_sdk._images import Image, describe_url, load_image, sniff_format
from qvq_sdk.errors import InputError

WHERE = "images[0]"
FORMATS = sorted(SAMPLES)


def no_fetch(url, where):
    raise AssertionError("fetched %s" % url)


def load(source, fetch=no_fetch):
    return load_image(source, WHERE, fetch)


def assert_input_error(source, where=WHERE, fetch=no_fetch, says=None):
    with pytest.raises(InputError) as info:
        load_image(source, where, fetch)
    assert info.value.input == where
    assert where in str(info.value)
    if says is not None:
        assert says in str(info.value)
    return info.value


# -- sniff_format -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_sniff_real_images(kind):
    assert sniff_format(SAMPLES[kind][0]) == kind


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xd8\xff", id="jpeg-3-bytes"),
        pytest.param(PNG[:8], id="png-signature-only"),
        pytest.param(PNG[:20], id="png-ihdr-cut"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, id="png-without-ihdr"),
        pytest.param(b"GIF89a", id="gif-signature-only"),
        pytest.param(GIF[:12], id="gif-screen-cut"),
        pytest.param(b"RIFF\x00\x00\x00\x00WAVEfmt ", id="riff-wave"),
        pytest.param(WEBP[:12], id="webp-without-chunk"),
        pytest.param(BMP[:20], id="bmp-cut"),
        pytest.param(b"BM" + b"\x00" * 12 + b"\x07\x00\x00\x00" + b"\x00" * 10, id="bmp-odd-header"),
        pytest.param(b"%PDF-1.7\n", id="pdf"),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'/>", id="svg"),
        pytest.param(b"II*\x00\x08\x00\x00\x00", id="tiff"),
        pytest.param(b"hello, world", id="text"),
    ],
)
def test_sniff_rejects(data):
    assert sniff_format(data) is None


# -- sources that hold the bytes ----------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"])
def test_bytes_like(kind, wrap):
    data, extension, mime_type = SAMPLES[kind]
    image = load(wrap(data))
    assert image == Image(data=data, filename="image." + extension, mime_type=mime_type)
    assert type(image.data) is bytes


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("as_path", [str, pathlib.Path], ids=["str", "pathlib"])
def test_path(tmp_path, kind, as_path):
    data, extension, mime_type = SAMPLES[kind]
    path = tmp_path / ("picture." + extension)
    path.write_bytes(data)
    assert load(as_path(path)) == Image(data=data, filename="picture." + extension, mime_type=mime_type)


@pytest.mark.parametrize(
    "name, data, filename",
    [
        pytest.param("photo.jpeg", JPEG, "photo.jpeg", id="jpeg-extension-kept"),
        pytest.param("PHOTO.JPG", JPEG, "PHOTO.JPG", id="upper-case-kept"),
        pytest.param("photo.png", JPEG, "photo.jpg", id="wrong-extension-fixed"),
        pytest.param("photo", GIF, "photo.gif", id="no-extension"),
        pytest.param("scan.tar.bmp", BMP, "scan.tar.bmp", id="two-dots"),
        pytest.param("cat.webp.txt", WEBP, "cat.webp.webp", id="misleading-suffix"),
        pytest.param(".hidden", PNG, ".hidden.png", id="dot-file"),
        pytest.param("chat é 🙂.png", PNG, "chat é 🙂.png", id="unicode-name"),
    ],
)
def test_filename_from_path(tmp_path, name, data, filename):
    path = tmp_path / name
    path.write_bytes(data)
    image = load(str(path))
    assert image.filename == filename
    assert image.mime_type == SAMPLES[sniff_format(data)][2]


def test_binary_file_object(tmp_path):
    path = tmp_path / "frame.gif"
    path.write_bytes(GIF)
    with open(str(path), "rb") as file:
        assert load(file) == Image(data=GIF, filename="frame.gif", mime_type="image/gif")


def test_bytesio_without_name():
    assert load(io.BytesIO(WEBP)) == Image(data=WEBP, filename="image.webp", mime_type="image/webp")


def test_file_object_read_from_its_current_position():
    file = io.BytesIO(b"junk" + PNG)
    file.seek(4)
    assert load(file).data == PNG


def test_text_mode_file_object():
    assert_input_error(io.StringIO("not bytes"), says="'rb'")


def test_text_mode_file_of_an_image(tmp_path):
    # The usual mistake: open(path) instead of open(path, "rb"). Reading it as text
    # fails to decode; that must still be the InputError that says what to do.
    path = tmp_path / "cat.png"
    path.write_bytes(PNG)
    with open(str(path), encoding="utf-8") as file:
        assert_input_error(file, says="'rb'")


# -- data: URIs -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_data_uri_base64(kind):
    data, extension, mime_type = SAMPLES[kind]
    uri = "data:%s;base64,%s" % (mime_type, base64.b64encode(data).decode("ascii"))
    assert load(uri) == Image(data=data, filename="image." + extension, mime_type=mime_type)


def test_data_uri_base64_with_line_breaks_and_upper_case_scheme():
    encoded = base64.encodebytes(JPEG).decode("ascii")  # a newline every 76 characters
    assert "\n" in encoded
    assert load("DATA:image/jpeg;base64," + encoded).data == JPEG


def test_data_uri_type_is_sniffed_not_trusted():
    uri = "data:image/jpeg;base64," + base64.b64encode(PNG).decode("ascii")
    assert load(uri).mime_type == "image/png"


def test_data_uri_percent_encoded():
    assert load("data:image/gif," + quote_from_bytes(GIF)) == Image(
        data=GIF, filename="image.gif", mime_type="image/gif"
    )


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("data:image/png;base64", id="no-comma"),
        pytest.param("data:image/png;base64,iVBOR@@@", id="bad-base64-characters"),
        pytest.param("data:image/png;base64,iVBORw0KGgo", id="bad-base64-padding"),
        pytest.param("data:image/png;base64,", id="empty-payload"),
        pytest.param("data:,hello", id="not-an-image"),
    ],
)
def test_malformed_data_uris(uri):
    error = assert_input_error(uri)
    assert "data:" in str(error)


# -- URLs ---------------------------------------------------------------------------------


def test_http_url_is_fetched_by_the_callback():
    calls = []

    def fetch(url, where):
        calls.append((url, where))
        return PNG

    url = "https://example.com/pics/cat%20photo.png?size=large#top"
    assert load(url, fetch) == Image(data=PNG, filename="cat photo.png", mime_type="image/png")
    assert calls == [(url, WHERE)]


@pytest.mark.parametrize(
    "url, filename",
    [
        pytest.param("http://example.com/", "image.jpg", id="no-path"),
        pytest.param("HTTP://example.com/img", "img.jpg", id="upper-case-scheme-no-extension"),
        pytest.param("https://example.com/a.png", "a.jpg", id="extension-fixed"),
    ],
)
def test_url_filename(url, filename):
    assert load(url, lambda url, where: JPEG).filename == filename


def test_url_that_is_not_an_image_names_the_url_without_secrets():
    error = assert_input_error(
        "https://user:pw@example.com/page.html?token=SECRET", fetch=lambda url, where: b"<html></html>"
    )
    assert "https://example.com/page.html" in str(error)
    assert "SECRET" not in str(error)
    assert "pw" not in str(error)


def test_url_errors_from_the_callback_pass_through():
    def fetch(url, where):
        raise InputError("%s: HTTP 404" % where, input=where)

    assert_input_error("https://example.com/gone.png", fetch=fetch, says="404")


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/cat.png", "file:///etc/passwd", "s3://bucket/cat.png", "gs://bucket/cat.png"],
)
def test_unsupported_url_schemes(url):
    assert_input_error(url, says="scheme")


# -- PIL images (Pillow is not needed: a stand-in with PIL's module name) ----------------


class FakePILImage:
    """Quacks like PIL.Image.Image for what load_image uses."""

    def __init__(self, format=None, fail_formats=(), mode="RGB"):
        self.format = format
        self.mode = mode
        self.fail_formats = set(fail_formats)
        self.saves = []
        self.converted_to = None

    def save(self, file, format=None):
        self.saves.append(format)
        if format in self.fail_formats and self.mode != "RGB":
            raise OSError("cannot write mode %s as %s" % (self.mode, format))
        file.write({"PNG": PNG, "JPEG": JPEG, "GIF": GIF, "WEBP": WEBP, "BMP": BMP}[format])

    def convert(self, mode):
        self.converted_to = mode
        copy = FakePILImage(self.format, self.fail_formats, mode)
        copy.saves = self.saves
        return copy


FakePILImage.__module__ = "PIL.Image"


@pytest.mark.parametrize(
    "pil_format, saved_as, mime_type, filename",
    [
        pytest.param("PNG", "PNG", "image/png", "image.png", id="png"),
        pytest.param("JPEG", "JPEG", "image/jpeg", "image.jpg", id="jpeg"),
        pytest.param("GIF", "GIF", "image/gif", "image.gif", id="gif"),
        pytest.param("WEBP", "WEBP", "image/webp", "image.webp", id="webp"),
        pytest.param("BMP", "BMP", "image/bmp", "image.bmp", id="bmp"),
        pytest.param(None, "PNG", "image/png", "image.png", id="new-image"),
        pytest.param("TIFF", "PNG", "image/png", "image.png", id="other-format"),
    ],
)
def test_pil_image(pil_format, saved_as, mime_type, filename):
    fake = FakePILImage(pil_format)
    image = load(fake)
    assert fake.saves == [saved_as]
    assert (image.mime_type, image.filename) == (mime_type, filename)
    assert sniff_format(image.data) is not None


def test_pil_image_that_cannot_be_saved_in_its_format_is_converted_to_png():
    fake = FakePILImage("JPEG", fail_formats={"JPEG"}, mode="RGBA")
    image = load(fake)
    assert fake.converted_to == "RGB"
    assert fake.saves == ["JPEG", "PNG"]
    assert image.mime_type == "image/png"
    assert image.data == PNG


def test_objects_from_elsewhere_named_like_pil_are_not_pil():
    class NotPIL:
        format = "PNG"

        def save(self, file, format=None):
            raise AssertionError("saved")

    NotPIL.__module__ = "PILLOW_fake"
    assert_input_error(NotPIL())


# -- what is refused ------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = str(tmp_path / "nowhere.png")
    error = assert_input_error(path)
    assert "nowhere.png" in str(error)


def test_directory(tmp_path):
    assert_input_error(str(tmp_path), says="directory")
    assert_input_error(tmp_path, says="directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert_input_error(str(path), says="empty")


def test_text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some notes\n")
    error = assert_input_error(str(path))
    assert "JPEG, PNG, GIF, WEBP or BMP" in str(error)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(b"", id="empty-bytes"),
        pytest.param(bytearray(), id="empty-bytearray"),
        pytest.param(io.BytesIO(b""), id="empty-file"),
        pytest.param(PNG[:16], id="truncated-png"),
        pytest.param(JPEG[:3], id="truncated-jpeg"),
        pytest.param(GIF[:6], id="truncated-gif"),
        pytest.param(b"%PDF-1.7\n" + b"x" * 64, id="pdf"),
        pytest.param("not a path and not an image", id="str-that-is-no-file"),
    ],
)
def test_refused_sources(source):
    assert_input_error(source)


@pytest.mark.parametrize(
    "source",
    [None, 42, 4.2, ["cat.png"], {"url": "x"}, object()],
    ids=["none", "int", "float", "list", "dict", "object"],
)
def test_refused_types(source):
    error = assert_input_error(source)
    assert type(source).__name__ in str(error)


def test_where_is_used_in_errors():
    assert_input_error(b"", where="messages (image part)")


def test_image_repr_is_short():
    image = load(PNG)
    assert repr(image) == "Image(filename='image.png', mime_type='image/png', size=%d)" % len(PNG)


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://user:secret@example.com:8443/a/b.png?sig=1#x", "https://example.com:8443/a/b.png"),
        ("http://example.com", "http://example.com"),
        ("http://[::1]:7860/a.png", "http://[::1]:7860/a.png"),
    ],
)
def test_describe_url(url, shown):
    assert describe_url(url) == shown

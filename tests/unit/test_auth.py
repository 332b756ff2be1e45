"""qvq_sdk._auth.resolve_token: argument > HF_TOKEN > HUGGING_FACE_HUB_TOKEN > token files."""

import pytest

from qvq_sdk._auth import resolve_token
from qvq_sdk.errors import InputError

# conftest.py removes every token variable and points HOME at an empty directory.


@pytest.fixture
def sources(monkeypatch, tmp_path, clean_environment):
    """Sets up each token source on demand, each with a token naming it."""
    home = clean_environment
    paths = {
        "HF_TOKEN_PATH": tmp_path / "custom" / "my-token",
        "HF_HOME": tmp_path / "hf-home" / "token",
        "default file": home / ".cache" / "huggingface" / "token",
    }

    def enable(name):
        if name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            monkeypatch.setenv(name, "hf_from_%s" % name)
            return
        path = paths[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("hf_from_%s\n" % name.replace(" ", "_"))
        if name == "HF_TOKEN_PATH":
            monkeypatch.setenv("HF_TOKEN_PATH", str(path))
        elif name == "HF_HOME":
            monkeypatch.setenv("HF_HOME", str(path.parent))

    return enable


ORDER = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "default file"]


def test_nothing_anywhere_is_no_token():
    assert resolve_token(None) is None


@pytest.mark.parametrize("winner", range(len(ORDER)), ids=ORDER)
def test_precedence(sources, winner):
    for name in ORDER[winner:]:
        sources(name)
    assert resolve_token(None) == "hf_from_%s" % ORDER[winner].replace(" ", "_")


def test_argument_beats_everything(sources):
    for name in ORDER:
        sources(name)
    assert resolve_token("hf_argument") == "hf_argument"


def test_false_means_no_token_whatever_the_environment(sources):
    for name in ORDER:
        sources(name)
    assert resolve_token(False) is None


def test_home_tilde_in_hf_home_and_token_path(monkeypatch, clean_environment):
    (clean_environment / "hf").mkdir()
    (clean_environment / "hf" / "token").write_text("hf_tilde_home")
    monkeypatch.setenv("HF_HOME", "~/hf")
    assert resolve_token(None) == "hf_tilde_home"
    (clean_environment / "path-token").write_text("hf_tilde_path")
    monkeypatch.setenv("HF_TOKEN_PATH", "~/path-token")
    assert resolve_token(None) == "hf_tilde_path"


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_blank_variables_are_skipped(monkeypatch, sources, blank):
    monkeypatch.setenv("HF_TOKEN", blank)
    sources("HUGGING_FACE_HUB_TOKEN")
    assert resolve_token(None) == "hf_from_HUGGING_FACE_HUB_TOKEN"


@pytest.mark.parametrize(
    "given, expected",
    [
        ("  hf_abc  ", "hf_abc"),
        ("hf_abc\n", "hf_abc"),
        ("\thf_abc\r\n", "hf_abc"),
        ("", None),
        ("   ", None),
    ],
)
def test_argument_whitespace_is_stripped(given, expected):
    assert resolve_token(given) == expected


def test_environment_whitespace_is_stripped(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "  hf_env \n")
    assert resolve_token(None) == "hf_env"


def test_token_file_whitespace_is_stripped(monkeypatch, tmp_path):
    path = tmp_path / "token"
    path.write_text("\n  hf_file  \n\n")
    monkeypatch.setenv("HF_TOKEN_PATH", str(path))
    assert resolve_token(None) == "hf_file"


@pytest.mark.parametrize(
    "contents",
    [pytest.param(b"", id="empty"), pytest.param(b"\xff\xfe\x00bad", id="not-utf8")],
)
def test_unusable_token_file_is_no_token(monkeypatch, tmp_path, contents):
    path = tmp_path / "token"
    path.write_bytes(contents)
    monkeypatch.setenv("HF_TOKEN_PATH", str(path))
    assert resolve_token(None) is None


def test_token_path_that_is_a_directory_is_no_token(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path))
    assert resolve_token(None) is None


SECRET_HEAD = "hf_SECRETheadPART"
SECRET_TAIL = "SECRETtailPART"
BROKEN = [
    SECRET_HEAD + "\n" + SECRET_TAIL,
    SECRET_HEAD + " " + SECRET_TAIL,
    SECRET_HEAD + "\x00" + SECRET_TAIL,
    SECRET_HEAD + "\x7f" + SECRET_TAIL,
]


def assert_refused_without_leaking(exc_info):
    error = exc_info.value
    assert error.input == "token"
    for text in (str(error), repr(error), repr(error.args)):
        assert "SECRET" not in text


@pytest.mark.parametrize("token", BROKEN, ids=["newline", "space", "nul", "del"])
def test_broken_argument(token):
    with pytest.raises(InputError) as info:
        resolve_token(token)
    assert_refused_without_leaking(info)
    assert "argument" in str(info.value)


@pytest.mark.parametrize("variable", ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"])
def test_broken_environment_variable(monkeypatch, variable):
    monkeypatch.setenv(variable, BROKEN[0])
    with pytest.raises(InputError) as info:
        resolve_token(None)
    assert_refused_without_leaking(info)
    assert variable in str(info.value)


def test_broken_token_file(monkeypatch, tmp_path):
    path = tmp_path / "token"
    path.write_text(BROKEN[0] + "\n")
    monkeypatch.setenv("HF_TOKEN_PATH", str(path))
    with pytest.raises(InputError) as info:
        resolve_token(None)
    assert_refused_without_leaking(info)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("token", [True, 42, b"hf_bytes", ["hf_x"]], ids=["true", "int", "bytes", "list"])
def test_token_of_the_wrong_type(token):
    with pytest.raises(InputError) as info:
        resolve_token(token)
    assert info.value.input == "token"
    assert "hf_bytes" not in str(info.value)

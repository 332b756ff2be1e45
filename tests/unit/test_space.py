"""qvq_sdk._space: Space ids → URLs, base URLs checked, /config → the generate endpoint."""

import pytest

from qvq_sdk._space import SpaceConfig, normalize_base_url, parse_config, space_url
from qvq_sdk.errors import InputError, NotFoundError, StreamError

CONFIG_URL = "http://127.0.0.1:7860/config"


@pytest.mark.parametrize(
    "space, url",
    [
        ("Qwen/QVQ-72B-preview", "https://qwen-qvq-72b-preview.hf.space"),
        ("user/my_space.v2", "https://user-my-space-v2.hf.space"),
        ("a/b", "https://a-b.hf.space"),
        ("Org-Name/Space123", "https://org-name-space123.hf.space"),
    ],
)
def test_space_url(space, url):
    assert space_url(space) == url


@pytest.mark.parametrize(
    "space",
    [
        "",
        "Qwen",
        "Qwen/",
        "/QVQ-72B-preview",
        "Qwen/QVQ/72B",
        "Qwen QVQ/72B",
        "Qwen/QVQ 72B",
        "Qwen/QVQ-72B?x=1",
        "https://huggingface.co/spaces/Qwen/QVQ-72B-preview",
        "qwen-qvq-72b-preview.hf.space",
        "-Qwen/QVQ",
        "Qwen/.QVQ",
        "Qwen/QVQ..72B",
        "Qwen/QVQ--72B",
        "Qwen/QVQ\n",
        "a" * 97 + "/b",
        None,
        42,
    ],
)
def test_malformed_space_ids(space):
    with pytest.raises(InputError) as info:
        space_url(space)
    assert info.value.input == "space"
    assert "space" in str(info.value)


@pytest.mark.parametrize(
    "base_url, normalized",
    [
        ("http://127.0.0.1:7860", "http://127.0.0.1:7860"),
        ("http://127.0.0.1:7860/", "http://127.0.0.1:7860"),
        ("https://example.com/apps/qvq/", "https://example.com/apps/qvq"),
        ("https://example.com/apps/qvq//", "https://example.com/apps/qvq"),
        ("http://[::1]:7860/", "http://[::1]:7860"),
        ("  http://localhost:7860/  ", "http://localhost:7860"),
        ("https://qwen-qvq-72b-preview.hf.space", "https://qwen-qvq-72b-preview.hf.space"),
    ],
)
def test_normalize_base_url(base_url, normalized):
    assert normalize_base_url(base_url) == normalized


@pytest.mark.parametrize(
    "base_url",
    [
        pytest.param("127.0.0.1:7860", id="no-scheme-ip"),
        pytest.param("localhost:7860", id="no-scheme-host"),
        pytest.param("example.com", id="bare-host"),
        pytest.param("ftp://example.com", id="ftp"),
        pytest.param("ws://example.com", id="websocket"),
        pytest.param("http://", id="no-host"),
        pytest.param("http:///path", id="empty-host"),
        pytest.param("http://example.com/?a=1", id="query"),
        pytest.param("http://example.com/#top", id="fragment"),
        pytest.param("http://user:pass@example.com", id="credentials"),
        pytest.param("http://user@example.com", id="username"),
        pytest.param("http://example.com:99999", id="port-out-of-range"),
        pytest.param("http://example.com:port", id="port-not-a-number"),
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
        pytest.param(b"http://example.com", id="bytes"),
    ],
)
def test_bad_base_urls(base_url):
    with pytest.raises(InputError) as info:
        normalize_base_url(base_url)
    assert info.value.input == "base_url"


def test_credentials_in_base_url_are_not_echoed():
    with pytest.raises(InputError) as info:
        normalize_base_url("https://user:hf_SECRET@example.com")
    assert "hf_SECRET" not in str(info.value)


# -- /config -------------------------------------------------------------------------------


def dependency(api_name, **fields):
    entry = {"api_name": api_name, "backend_fn": True, "queue": True, "js": None}
    entry.update(fields)
    return entry


def gradio5_config(**overrides):
    config = {
        "version": "5.9.1",
        "mode": "blocks",
        "api_prefix": "/gradio_api",
        "protocol": "sse_v3",
        "max_file_size": None,
        "components": [],
        "dependencies": [
            dependency(None, id=0, backend_fn=False),
            dependency("lambda", id=1),
            dependency("generate", id=2),
        ],
    }
    config.update(overrides)
    return config


def test_parse_gradio5_config():
    assert parse_config(gradio5_config(), CONFIG_URL) == SpaceConfig(
        api_prefix="/gradio_api",
        fn_index=2,
        api_name="generate",
        queue_protocol="sse_v3",
        max_file_size=None,
        version="5.9.1",
    )


@pytest.mark.parametrize(
    "overrides, prefix",
    [
        pytest.param({"api_prefix": "/gradio_api"}, "/gradio_api", id="gradio5"),
        pytest.param({"api_prefix": "gradio_api/"}, "/gradio_api", id="slashes-normalized"),
        pytest.param({"api_prefix": ""}, "", id="empty"),
        pytest.param({"api_prefix": "/"}, "", id="slash"),
        pytest.param({"api_prefix": None}, "", id="null"),
    ],
)
def test_api_prefix(overrides, prefix):
    assert parse_config(gradio5_config(**overrides), CONFIG_URL).api_prefix == prefix


def test_gradio4_config_without_api_prefix():
    config = gradio5_config(version="4.44.1", protocol="sse_v3")
    del config["api_prefix"]
    parsed = parse_config(config, CONFIG_URL)
    assert parsed.api_prefix == ""
    assert parsed.version == "4.44.1"


def test_fn_index_from_id_not_position():
    config = gradio5_config(dependencies=[dependency("other", id=5), dependency("generate", id=9)])
    assert parse_config(config, CONFIG_URL).fn_index == 9


@pytest.mark.parametrize("odd_id", [None, "2", 1.5], ids=["null", "str", "float"])
def test_fn_index_falls_back_to_position(odd_id):
    entry = dependency("generate")
    if odd_id is not None:
        entry["id"] = odd_id
    config = gradio5_config(dependencies=[dependency("a"), "junk", entry])
    assert parse_config(config, CONFIG_URL).fn_index == 2


@pytest.mark.parametrize("api_name", ["generate", "/generate"])
def test_api_name_with_or_without_slash(api_name):
    config = gradio5_config(dependencies=[dependency(api_name, id=0)])
    assert parse_config(config, CONFIG_URL).api_name == "generate"


@pytest.mark.parametrize(
    "value, parsed",
    [
        (10485760, 10485760),
        (None, None),
        (0, None),
        (-1, None),
        ("10 MB", None),
    ],
)
def test_max_file_size(value, parsed):
    assert parse_config(gradio5_config(max_file_size=value), CONFIG_URL).max_file_size == parsed


def test_odd_protocol_and_version_are_none():
    parsed = parse_config(gradio5_config(protocol=3, version=None), CONFIG_URL)
    assert parsed.queue_protocol is None
    assert parsed.version is None


def test_no_generate_endpoint_lists_what_there_is():
    config = gradio5_config(
        dependencies=[dependency("predict", id=0), dependency("/chat", id=1), dependency(None, id=2), dependency(False)]
    )
    with pytest.raises(NotFoundError) as info:
        parse_config(config, CONFIG_URL)
    assert info.value.status_code == 404
    assert info.value.url == CONFIG_URL
    assert "/predict" in str(info.value)
    assert "/chat" in str(info.value)
    assert "/generate" in str(info.value)


def test_no_endpoints_at_all():
    with pytest.raises(NotFoundError) as info:
        parse_config(gradio5_config(dependencies=[]), CONFIG_URL)
    assert "none" in str(info.value)


def test_similar_names_are_not_generate():
    config = gradio5_config(dependencies=[dependency("generate_1"), dependency("regenerate"), dependency("Generate")])
    with pytest.raises(NotFoundError):
        parse_config(config, CONFIG_URL)


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(None, id="null"),
        pytest.param([], id="list"),
        pytest.param("<html>", id="str"),
        pytest.param({"detail": "Not Found"}, id="fastapi-404"),
        pytest.param({"dependencies": {"0": {}}}, id="dependencies-not-a-list"),
    ],
)
def test_not_a_config(config):
    with pytest.raises(StreamError) as info:
        parse_config(config, CONFIG_URL)
    assert CONFIG_URL in str(info.value)

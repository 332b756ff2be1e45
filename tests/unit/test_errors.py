"""qvq_sdk.errors: the hierarchy drawn in the module docstring, attributes and reprs."""

import copy
import inspect
import pickle
import re
from concurrent.futures import ProcessPoolExecutor

import pytest

from qvq_sdk import errors
from qvq_sdk.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AppError,
    AuthenticationError,
    InputError,
    NotFoundError,
    QuotaExceededError,
    QVQError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
)

# The tree, as errors.py draws it (child: parent).
TREE = {
    "InputError": "QVQError",
    "APIConnectionError": "QVQError",
    "APITimeoutError": "APIConnectionError",
    "APIStatusError": "QVQError",
    "AuthenticationError": "APIStatusError",
    "NotFoundError": "APIStatusError",
    "RateLimitError": "APIStatusError",
    "ServiceUnavailableError": "APIStatusError",
    "AppError": "QVQError",
    "QuotaExceededError": "AppError",
    "StreamError": "QVQError",
}


def drawn_tree():
    """child → parent, read from the box drawing in errors.py's docstring."""
    parents = {}
    stack = []  # (column, name) of the current branch
    for line in errors.__doc__.splitlines():
        match = re.search(r"(?:── |^\s*)([A-Z]\w*Error)\b", line)
        if not match:
            continue
        column, name = match.start(1), match.group(1)
        while stack and stack[-1][0] >= column:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((column, name))
    return parents


def test_docstring_drawing_is_the_tree_tested_here():
    assert drawn_tree() == TREE


@pytest.mark.parametrize("child, parent", sorted(TREE.items()))
def test_each_class_has_exactly_its_drawn_parent(child, parent):
    cls = getattr(errors, child)
    qvq_bases = [base for base in cls.__bases__ if issubclass(base, QVQError)]
    assert qvq_bases == [getattr(errors, parent)]


def test_every_error_is_a_qvq_error_and_an_exception():
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, QVQError)
        assert issubclass(cls, Exception)


def test_all_lists_every_class_of_the_tree():
    assert sorted(errors.__all__) == sorted([*list(TREE), "QVQError"])


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)
    assert not issubclass(StreamError, ValueError)
    assert not issubclass(AppError, ValueError)


@pytest.mark.parametrize(
    "cls, not_a",
    [
        (APITimeoutError, APIStatusError),
        (RateLimitError, AppError),
        (QuotaExceededError, RateLimitError),
        (StreamError, APIConnectionError),
        (NotFoundError, StreamError),
    ],
)
def test_siblings_are_apart(cls, not_a):
    assert not issubclass(cls, not_a)


def test_input_error_attributes():
    error = InputError("images[1] is empty.", input="images[1]")
    assert error.input == "images[1]"
    assert str(error) == "images[1] is empty."
    assert InputError("x").input is None


@pytest.mark.parametrize("cls", [APIStatusError, AuthenticationError, NotFoundError, ServiceUnavailableError])
def test_status_error_attributes(cls):
    error = cls(
        "Nope (HTTP 503).", status_code=503, body="Queue is full", url="https://x.hf.space/config", request_id="abc"
    )
    assert (error.status_code, error.body, error.url, error.request_id) == (
        503,
        "Queue is full",
        "https://x.hf.space/config",
        "abc",
    )
    assert str(error) == "Nope (HTTP 503)."
    minimal = cls("m", status_code=404)
    assert (minimal.body, minimal.url, minimal.request_id) == (None, None, None)


def test_rate_limit_error_attributes():
    error = RateLimitError("Slow down.", status_code=429, retry_after=7.0, body="busy")
    assert (error.status_code, error.retry_after, error.body) == (429, 7.0, "busy")
    assert RateLimitError("m", status_code=429).retry_after is None


def test_app_error_attributes():
    error = AppError("The Space's app failed: boom", message="boom")
    assert error.message == "boom"
    assert str(error) == "The Space's app failed: boom"
    assert AppError("hidden").message is None


def test_quota_error_attributes():
    error = QuotaExceededError("Out of quota.", message="quota text", retry_after=192.0)
    assert (error.message, error.retry_after) == ("quota text", 192.0)
    assert QuotaExceededError("x").retry_after is None


@pytest.mark.parametrize(
    "error, expected",
    [
        (QVQError("closed"), "QVQError('closed')"),
        (InputError("bad", input="timeout"), "InputError('bad')"),
        (StreamError("cut"), "StreamError('cut')"),
        (AppError("failed", message="m"), "AppError('failed')"),
        (APITimeoutError("slow"), "APITimeoutError('slow')"),
        (
            NotFoundError("Not found.", status_code=404, body="x" * 300, url="u"),
            "NotFoundError(status_code=404, message='Not found.')",
        ),
        (
            RateLimitError("Later.", status_code=429, retry_after=3.0),
            "RateLimitError(status_code=429, message='Later.')",
        ),
    ],
)
def test_repr_is_compact(error, expected):
    assert repr(error) == expected
    assert "\n" not in repr(error)


def test_errors_can_be_raised_and_caught_as_their_parents():
    with pytest.raises(APIConnectionError):
        raise APITimeoutError("timed out")
    with pytest.raises(ValueError):
        raise InputError("bad")
    with pytest.raises(QVQError):
        raise QuotaExceededError("quota", retry_after=1.0)


# -- pickle and copy: errors cross processes and task queues whole ------------------------------

# A distinctive value for each keyword-only parameter of the errors' constructors. A new
# parameter fails make_error() until it gets one here.
SAMPLE_VALUES = {
    "input": "images[0]",
    "status_code": 503,
    "body": "Queue is full",
    "url": "https://x.hf.space/gradio_api/queue/join",
    "request_id": "req-42",
    "retry_after": 7.5,
    "message": "the app's own message",
}


def keyword_parameters(cls):
    """The keyword-only parameters a class's constructor takes, its own and those it passes
    on through **kwargs to its parents' constructors."""
    names = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if not issubclass(klass, QVQError):
            break
        parameters = inspect.signature(init).parameters.values()
        names += [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in names]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return names


def make_error(name):
    """An error of the class ``name`` with every attribute set, space_stage included."""
    cls = getattr(errors, name)
    missing = [p for p in keyword_parameters(cls) if p not in SAMPLE_VALUES]
    assert not missing, f"add a sample value for {missing} to SAMPLE_VALUES"
    options = {p: SAMPLE_VALUES[p] for p in keyword_parameters(cls)}
    error = cls(f"{name}: what happened, and what to do.", **options)
    for option, value in options.items():
        assert getattr(error, option) == value
    if isinstance(error, APIStatusError):
        error.space_stage = "PAUSED"  # set by the client after it asked the Hub
    return error


def assert_same_error(copied, original):
    assert type(copied) is type(original)
    assert copied is not original
    assert str(copied) == str(original)
    assert copied.args == original.args
    assert repr(copied) == repr(original)
    assert vars(copied) == vars(original)


def test_make_error_sets_attributes_the_constructors_take():
    error = make_error("RateLimitError")
    assert vars(error) == {
        "status_code": 503,
        "body": "Queue is full",
        "url": "https://x.hf.space/gradio_api/queue/join",
        "request_id": "req-42",
        "space_stage": "PAUSED",
        "retry_after": 7.5,
    }
    assert vars(make_error("QuotaExceededError")) == {"message": "the app's own message", "retry_after": 7.5}
    assert vars(make_error("InputError")) == {"input": "images[0]"}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_survives_pickle(name, protocol):
    error = make_error(name)
    assert_same_error(pickle.loads(pickle.dumps(error, protocol)), error)


@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_survives_copy(name, copier):
    error = make_error(name)
    before = dict(vars(error))
    copied = copier(error)
    assert_same_error(copied, error)
    copied.args = ("changed",)
    vars(copied).clear()
    assert str(error) == f"{name}: what happened, and what to do."  # nothing shared
    assert vars(error) == before


@pytest.mark.parametrize("name", errors.__all__)
def test_a_copy_keeps_attributes_added_later_and_the_minimal_form(name):
    error = make_error(name)
    error.extra = ["added", "later"]  # e.g. by a caller or by add_note() on Python 3.11
    assert pickle.loads(pickle.dumps(error)).extra == ["added", "later"]
    assert copy.deepcopy(error).extra == ["added", "later"]
    cls = getattr(errors, name)
    required = {"status_code": 404} if issubclass(cls, APIStatusError) else {}
    bare = cls("just a message", **required)
    assert_same_error(pickle.loads(pickle.dumps(bare)), bare)


def test_a_pickled_error_is_still_caught_as_its_parents():
    error = pickle.loads(pickle.dumps(make_error("InputError")))
    with pytest.raises(ValueError, match="what to do"):
        raise error
    with pytest.raises(APIStatusError) as info:
        raise pickle.loads(pickle.dumps(make_error("ServiceUnavailableError")))
    assert info.value.status_code == 503


def raise_rate_limit_error(retry_after):
    """Runs in a worker process."""
    error = RateLimitError(
        "The Space is rate limiting (HTTP 429). Wait and retry.", status_code=429, retry_after=retry_after, body="slow"
    )
    error.space_stage = "RUNNING"
    raise error


def test_an_error_crosses_a_process_pool():
    with ProcessPoolExecutor(max_workers=1) as pool:
        future = pool.submit(raise_rate_limit_error, 12.0)
        error = future.exception(timeout=60)
    assert type(error) is RateLimitError
    assert str(error) == "The Space is rate limiting (HTTP 429). Wait and retry."
    assert (error.status_code, error.retry_after, error.body, error.space_stage) == (429, 12.0, "slow", "RUNNING")

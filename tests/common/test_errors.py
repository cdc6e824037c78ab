"""cyclegan.common.errors: every error class about the user's inputs is a UserError, one place reports them."""

import importlib
import inspect
import logging
import pkgutil

import pytest

import cyclegan
from cyclegan.config.checks import ConfigError
from cyclegan.common.errors import MissingFileError, UserError, exit_on_user_error, find_cause, first_line, one_line


def _package_exceptions() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(cyclegan.__path__, prefix="cyclegan."):
        if ".sample" in info.name:  # bundled images and their maker script, not the package
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == info.name:
                found.append(obj)
    return found


def test_every_error_class_of_the_package_is_a_user_error():
    classes = _package_exceptions()
    names = {c.__name__ for c in classes}
    # the ones entry points used to list by hand must be among them
    assert {"CheckpointError", "DatasetNotFoundError", "DatasetDownloadError", "EvaluationError",
            "InceptionNotAvailableError", "ImageLoadError", "TranslateError", "ConfigError"} <= names
    assert [c.__name__ for c in classes if not issubclass(c, UserError)] == []


def test_a_wrapped_user_error_is_one_line_and_its_exit_code(caplog):
    class Diverged(UserError):
        exit_code = 3

    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        with exit_on_user_error():
            try:
                raise Diverged("loss went NaN\nat step 7")
            except Diverged as inner:  # hydra.utils.instantiate wraps constructor errors like this
                raise RuntimeError("Error instantiating") from inner
    assert e.value.code == 3 and caplog.records[-1].getMessage() == "loss went NaN | at step 7"


def test_missing_file_is_a_file_not_found_error_and_a_user_error(caplog):
    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        with exit_on_user_error():
            raise MissingFileError("no such file: x.ckpt")
    assert e.value.code == 2 and caplog.records[-1].getMessage() == "no such file: x.ckpt"
    assert issubclass(MissingFileError, FileNotFoundError)


def test_first_and_one_line():
    exc = ValueError("first\n  second  \n")
    assert first_line(exc) == "first" and one_line(exc) == "first | second"
    assert first_line(KeyError()) == "KeyError" == one_line(KeyError())


def test_find_cause_walks_explicit_and_implicit_causes():
    class Wanted(Exception):
        pass

    def raised(fn):
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001
            return exc

    def explicit():
        try:
            raise Wanted("inner")
        except Wanted as inner:
            raise RuntimeError("outer") from inner

    def implicit():
        try:
            raise Wanted("inner")
        except Wanted:
            raise RuntimeError("outer")  # noqa: B904 - the implicit chain is what is tested

    assert str(find_cause(raised(explicit), Wanted)) == "inner"
    assert str(find_cause(raised(implicit), Wanted)) == "inner"
    # a bug raised while handling a user error is not that user error
    assert find_cause(raised(implicit), Wanted, explicit_only=True) is None
    assert find_cause(raised(explicit), OSError) is None
    assert find_cause(OSError(28, "full"), OSError, where=lambda e: e.errno == 28).errno == 28
    assert find_cause(OSError(2, "missing"), OSError, where=lambda e: e.errno == 28) is None


def test_find_cause_stops_on_a_chain_that_loops():
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    assert find_cause(a, KeyError) is None


def test_user_errors_exit_2_with_one_line_while_bugs_keep_their_traceback(caplog):
    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        with exit_on_user_error():
            raise ConfigError("model.gen='x' is not one of: a, b")
    assert e.value.code == 2 and caplog.records[-1].getMessage() == "model.gen='x' is not one of: a, b"
    with pytest.raises(ZeroDivisionError):
        with exit_on_user_error():
            1 / 0


def test_a_key_the_target_does_not_take_is_one_line_naming_the_group(tmp_path, caplog):
    from conftest import TINY, compose_config
    from cyclegan.training.run import train

    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        with exit_on_user_error():
            train(compose_config(tmp_path, *TINY, "+data.unknown_key=1"))
    assert e.value.code == 2
    assert caplog.records[-1].getMessage() == ("data (cyclegan.data.datamodule.UnpairedDataModule): UnpairedDataModule."
                                               "__init__() got an unexpected keyword argument 'unknown_key'")
    with pytest.raises(SystemExit), caplog.at_level(logging.ERROR):
        with exit_on_user_error():
            train(compose_config(tmp_path, *TINY, "+model.unknown_key=1"))
    message = caplog.records[-1].getMessage()  # the config check or the family's own check (both UserErrors)
    assert message.startswith("model") and "unknown_key" in message and "\n" not in message


def test_a_type_error_deep_inside_a_constructor_keeps_its_traceback():
    import hydra

    with pytest.raises(Exception) as e, exit_on_user_error():
        hydra.utils.instantiate({"_target_": "test_errors.BuggyThing"})
    assert type(e.value).__name__ == "InstantiationException"


def _bug():
    return 1 + "1"


class BuggyThing:
    def __init__(self):
        _bug()  # a bug two frames down: not the user's arguments


def test_a_family_given_an_option_no_network_takes_raises_a_user_error():
    from conftest import TINY_MODEL
    from cyclegan.common.errors import ArgumentsError
    from cyclegan.gan.module import CycleGAN

    with pytest.raises(ArgumentsError, match="^model: CycleGAN got unknown_key, which no registered network takes"):
        CycleGAN(**TINY_MODEL, unknown_key=1)

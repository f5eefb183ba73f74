"""Settings: every ASSISTANT_* value the assistant cannot run with is refused by name, with what it takes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from retrieval.settings import MAX_QUESTION_CHARS_LIMIT, ROOT, Backend, Settings, SettingsError


@pytest.mark.parametrize("value", ["abc", "-5", "0", "", " ", "1.5", "5e2", "１２", "10001", "9" * 40, "0x10", "½"])
def test_a_question_limit_that_is_not_a_positive_whole_number_is_named(value):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"ASSISTANT_MAX_QUESTION_CHARS": value})
    assert str(info.value) == (f"ASSISTANT_MAX_QUESTION_CHARS={value!r}: expected a whole number "
                               f"from 1 to {MAX_QUESTION_CHARS_LIMIT}")


@pytest.mark.parametrize("value, limit", [("1", 1), (" 800 ", 800), ("+20", 20), (str(MAX_QUESTION_CHARS_LIMIT),
                                                                               MAX_QUESTION_CHARS_LIMIT)])
def test_a_question_limit_in_range_is_taken(value, limit):
    assert Settings.from_env({"ASSISTANT_MAX_QUESTION_CHARS": value}).max_question_chars == limit


def test_the_limit_is_checked_however_settings_are_made():
    with pytest.raises(SettingsError, match="max_question_chars=-5"):
        Settings(max_question_chars=-5)
    with pytest.raises(SettingsError, match="max_question_chars=True"):
        Settings(max_question_chars=True)


def test_the_backend_is_an_enum_and_a_wrong_one_is_named_with_the_choices():
    assert Settings().backend is Backend.OPENVINO and Settings.from_env({}).backend is Backend.OPENVINO
    assert Settings.from_env({"ASSISTANT_BACKEND": " Torch "}).backend is Backend.TORCH
    assert Settings(backend="torch").backend is Backend.TORCH and Backend.TORCH == "torch"
    for value in ("onnx", "", "cuda"):
        with pytest.raises(SettingsError) as info:
            Settings.from_env({"ASSISTANT_BACKEND": value})
        assert str(info.value) == f"ASSISTANT_BACKEND={value!r}: expected one of openvino, torch"
    with pytest.raises(SettingsError, match="backend='onnx'"):
        Settings(backend="onnx")


def test_the_busy_model_switch_takes_on_or_off_and_names_anything_else():
    assert Settings.from_env({}).busy_model is True
    assert Settings.from_env({"ASSISTANT_BUSY_MODEL": " Off "}).busy_model is False
    assert Settings.from_env({"ASSISTANT_BUSY_MODEL": "0"}).busy_model is False
    assert Settings.from_env({"ASSISTANT_BUSY_MODEL": "yes"}).busy_model is True
    for value in ("2", "", "disable"):
        with pytest.raises(SettingsError) as info:
            Settings.from_env({"ASSISTANT_BUSY_MODEL": value})
        assert str(info.value) == f"ASSISTANT_BUSY_MODEL={value!r}: expected 1 or 0 (on or off)"


@pytest.mark.parametrize("variable, value", [("ASSISTANT_MAX_QUESTION_CHARS", "abc"),
                                             ("ASSISTANT_MAX_QUESTION_CHARS", "-5"), ("ASSISTANT_BACKEND", "onnx")])
@pytest.mark.parametrize("command", [["check"], ["ask", "gv", "top", "up"], ["prepare"]])
def test_the_command_line_names_a_bad_setting_without_a_traceback(command, variable, value):
    result = subprocess.run([sys.executable, "-m", "retrieval", *command], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, variable: value}, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"error: {variable}={value!r}: " + (
        "expected one of openvino, torch" if variable == "ASSISTANT_BACKEND"
        else f"expected a whole number from 1 to {MAX_QUESTION_CHARS_LIMIT}")]

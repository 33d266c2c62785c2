import pytest

from keras_scl.validation import check_int
from keras_scl.validation import check_number


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "1", True, None], ids=str)
def test_check_number_strict_rejects(value):
    with pytest.raises(ValueError, match=r"Expected `x` to be a finite number > 0, because\. Received: x="):
        check_number("x", value, minimum=0, strict=True, reason=", because")


def test_check_number_returns_float_and_allows_bound_when_not_strict():
    assert check_number("x", 0, minimum=0, strict=False) == 0.0
    assert isinstance(check_number("x", 3, minimum=0, strict=True), float)


@pytest.mark.parametrize("value", [0, 1.0, 1.5], ids=str)
def test_check_number_with_strict_maximum_rejects(value):
    with pytest.raises(ValueError, match=r"Expected `p` to be a finite number > 0 and < 1\. Received: p="):
        check_number("p", value, minimum=0, strict=True, maximum=1, strict_maximum=True)


def test_check_number_allows_maximum_when_not_strict():
    assert check_number("p", 1, minimum=0, strict=True, maximum=1) == 1.0
    with pytest.raises(ValueError, match=r"> 0 and <= 1\. Received: p=1\.01"):
        check_number("p", 1.01, minimum=0, strict=True, maximum=1)


@pytest.mark.parametrize("value", [0, 1.0, True, "2"], ids=str)
def test_check_int_rejects(value):
    with pytest.raises(ValueError, match=r"Expected `n` to be an int >= 1\. Received: n="):
        check_int("n", value, minimum=1)


def test_check_int_none_only_when_allowed():
    assert check_int("n", None, minimum=0, allow_none=True) is None
    with pytest.raises(ValueError, match="an int >= 0 or None"):
        check_int("n", -1, minimum=0, allow_none=True)

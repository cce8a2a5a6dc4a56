"""Tests for elfkit.profiles: the named profiles, validated overrides (keys and types), frozen dataclass."""
import dataclasses

import pytest

from elfkit import profiles
from elfkit.errors import ElfkitError


def test_get_cpu_returns_the_cpu_profile():
    p = profiles.get("cpu")
    assert p == profiles.CPU
    assert p.name == "cpu" and p.dataset == "fashion_mnist" and p.threads == 2


@pytest.mark.parametrize("name", ["smoke", "cpu", "paper"])
def test_every_named_profile_resolves(name):
    assert profiles.get(name).name == name


def test_unknown_profile_name_raises_with_choices():
    with pytest.raises(ElfkitError, match="unknown profile 'gpu'") as e:
        profiles.get("gpu")
    for name in ("smoke", "cpu", "paper"):
        assert name in str(e.value)


def test_unknown_override_lists_valid_keys():
    with pytest.raises(ElfkitError) as e:
        profiles.get("smoke", n_eval_model=3)
    msg = str(e.value)
    assert "n_eval_model" in msg
    for f in dataclasses.fields(profiles.Profile):
        if f.name != "name":
            assert f.name in msg


def test_valid_overrides_are_applied_and_base_untouched():
    p = profiles.get("smoke", ipc=7, eval_dsa=False, distill_arch="MLP")
    assert (p.ipc, p.eval_dsa, p.distill_arch) == (7, False, "MLP")
    assert p.name == "smoke"
    assert profiles.SMOKE.ipc == 2 and profiles.SMOKE.eval_dsa is True


@pytest.mark.parametrize("key,value,match", [
    ("ipc", "10", "must be an int"),            # str for int
    ("ipc", True, "must be an int"),            # bool is an int subclass but must be refused
    ("ipc", 2.0, "must be an int"),             # float for int
    ("eval_dsa", 1.0, "must be True or False"),  # float for bool
    ("eval_dsa", 1, "must be True or False"),    # int for bool
    ("eval_lr", "0.1", "must be a number"),      # str for float
    ("eval_lr", False, "must be a number"),      # bool for float
    ("ipcs", "1,10", "must be a list or tuple"),  # str for a tuple field
    ("ipcs", 10, "must be a list or tuple"),     # scalar for a tuple field
    ("ipcs", [1, "10"], "must be an int"),       # element types are checked too
    ("eval_archs", ["ConvNet", 3], "must be a string"),
    ("distill_arch", 3, "must be a string"),
])
def test_wrong_types_raise(key, value, match):
    with pytest.raises(ElfkitError, match=match):
        profiles.get("smoke", **{key: value})


def test_int_is_accepted_for_float_fields():
    p = profiles.get("smoke", eval_lr=1, dm_lr_img=2)
    assert p.eval_lr == 1.0 and isinstance(p.eval_lr, float)
    assert p.dm_lr_img == 2.0 and isinstance(p.dm_lr_img, float)


def test_lists_become_tuples():
    p = profiles.get("smoke", ipcs=[1, 10, 50], eval_archs=["ConvNet", "MLP"])
    assert p.ipcs == (1, 10, 50) and isinstance(p.ipcs, tuple)
    assert p.eval_archs == ("ConvNet", "MLP") and isinstance(p.eval_archs, tuple)
    hash(p)  # frozen and made only of hashables


def test_profile_is_frozen():
    p = profiles.get("cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.ipc = 3
    assert profiles.CPU.ipc == 10


def test_overrides_as_text_parse_to_the_same_profile():
    from elfkit.context import parse_overrides, start

    assert parse_overrides('{"n_eval_models": 2}') == parse_overrides("{'n_eval_models': 2}") == {"n_eval_models": 2}
    assert start("00_test", "smoke", quiet=True, overrides='{"n_eval_models": 4}').profile.n_eval_models == 4
    for bad in ("n_eval_models=2", "[1, 2]", 3):
        with pytest.raises(ElfkitError, match="overrides must be a dict"):
            parse_overrides(bad)

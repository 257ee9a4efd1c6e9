"""label_smoothed_skd's flags: the defaults that follow the evidence, and the errors of bad ones.
skd_fairseq.settings is pure: these tests build no fairseq object."""

from types import SimpleNamespace

import pytest

from skd_fairseq.settings import DEFAULT_GOLD_MASS, skd_settings

DEFAULTS = dict(
    skd_alpha=0.5,
    skd_start_update=0,
    skd_warmup_updates=0,
    skd_topk=8,
    skd_candidates="neighbours",
    skd_similarity="cosine",
    skd_temperature=None,
    skd_gold_mass=None,
    skd_weighting="softmax",
    skd_sigma=None,
    skd_weight_max=None,
    skd_adaptive_candidates=None,
    skd_neighbour_refresh=50,
    skd_exclude_unseen=False,
    skd_include_unseen=False,
)


def settings(**flags):
    return skd_settings(SimpleNamespace(**dict(DEFAULTS, **flags)), vocab_size=64, n_excluded=4)


def test_no_flags_give_the_validated_setting():
    s = settings()
    assert (s.gold_mass, s.temperature, s.exclude_unseen) == (DEFAULT_GOLD_MASS, None, True) == (0.75, None, True)
    assert (s.alpha_max, s.topk, s.candidates, s.similarity) == (0.5, 8, "neighbours", "cosine")


def test_an_explicit_temperature_or_gold_mass_replaces_the_default():
    assert (settings(skd_temperature=1.0).temperature, settings(skd_temperature=1.0).gold_mass) == (1.0, None)
    assert settings(skd_gold_mass=0.6).gold_mass == 0.6
    assert settings(skd_include_unseen=True).exclude_unseen is False


def test_with_skd_off_the_defaults_build_nothing_and_refuse_nothing():
    # The teacher-based criteria default to --skd-alpha 0: no seen-target set, no soft target.
    s = settings(skd_alpha=0.0, skd_similarity="dot")
    assert (s.exclude_unseen, s.temperature, s.gold_mass) == (False, None, None)
    assert settings(skd_alpha=0.0, skd_exclude_unseen=True).exclude_unseen is True


def test_the_top1_reading_keeps_the_public_codes_argmax_over_every_token():
    top1 = dict(skd_weighting="distance", skd_candidates="predicted", skd_topk=1, skd_sigma=0.5)
    s = settings(**top1)
    assert (s.temperature, s.gold_mass, s.exclude_unseen, s.weight_max) == (None, None, False, 0.5)
    assert settings(**top1, skd_exclude_unseen=True).exclude_unseen is True


@pytest.mark.parametrize(
    "flags, message",
    [
        (dict(skd_similarity="dot"), r"--skd-similarity dot without --skd-temperature: .*give --skd-temperature TAU"),
        (
            dict(skd_exclude_unseen=True, skd_include_unseen=True),
            r"--skd-exclude-unseen or --skd-include-unseen, not both",
        ),
        (dict(skd_temperature=0.5, skd_gold_mass=0.8), r"not both"),
        (dict(skd_gold_mass=0.8, skd_similarity="dot"), r"--skd-gold-mass needs --skd-similarity cosine or l2"),
        (dict(skd_sigma=0.5), r"--skd-sigma belongs to --skd-weighting distance"),
        (dict(skd_neighbour_refresh=-1), r"--skd-neighbour-refresh must be >= 0"),
        (dict(skd_topk=61), r"--skd-topk"),
        (dict(skd_alpha=1.5), r"--skd-alpha must be in \[0, 1\]"),
    ],
)
def test_bad_flags_name_the_flag_and_the_fix(flags, message):
    with pytest.raises(ValueError, match=message):
        settings(**flags)

"""core/parameters.py: what each rule allows, the messages naming the allowed values, and the
entry points refusing with them."""

import math

import pytest
from raster_clustering.core import parameters
from raster_clustering.core.clustering.classify import check_sieve_options
from raster_clustering.core.clustering.kmeans import KMeansSettings
from raster_clustering.core.errors import InvalidInputError
from raster_clustering.core.parameters import Interval, Options, Percentiles


@pytest.mark.parametrize(("rule", "value", "allowed"), [
    (Interval(2, 255, whole=True), 2, True),
    (Interval(2, 255, whole=True), 255, True),
    (Interval(2, 255, whole=True), 256, False),
    (Interval(2, 255, whole=True), 5.0, True),
    (Interval(2, 255, whole=True), 5.5, False),
    (Interval(2, 255, whole=True), True, False),
    (Interval(0, None), 0, True),
    (Interval(0, None, low_open=True), 0, False),
    (Interval(0, None), math.inf, False),
    (Interval(0, None), math.nan, False),
    (Interval(0, None), "10", False),
    (Interval(None, 1, high_open=True), 1, False),
    (Options((4, 8)), 8, True),
    (Options((4, 8)), 6, False),
    (Options((4, 8)), True, False),
    (Percentiles(), (0.5, 99.5), True),
    (Percentiles(), (5, 5), False),
    (Percentiles(), (math.nan, 5), False),
    (Percentiles(), (1, 101), False),
])
def test_what_a_rule_allows(rule, value, allowed):
    assert rule.allows(value) is allowed


@pytest.mark.parametrize(("rule", "text"), [
    (Interval(2, 255, whole=True), "a whole number from 2 to 255"),
    (Interval(0, None), "a number of at least 0"),
    (Interval(0, None, low_open=True, noun="an area in m²"), "an area in m² greater than 0"),
    (Interval(0, 1, high_open=True), "a number of at least 0 and less than 1"),
    (Options((4, 8)), "4 or 8"),
    (Options((1, 2, 3)), "1, 2 or 3"),
])
def test_the_allowed_values_in_words(rule, text):
    assert rule.describe() == text


def test_messages_name_the_parameter_the_allowed_values_the_value_and_the_hint():
    assert parameters.CLUSTERS.problem(300) == (
        "CLUSTERS must be a whole number from 2 to 255, not 300.")
    assert parameters.MIN_REGION_AREA.problem("lots").startswith(
        "MIN_AREA must be an area in m² greater than 0, not 'lots'; e.g. 2000 keeps")
    assert parameters.CLIP_QUANTILES.problem((5.0, 2.0)) == (
        "CLIP_QUANTILES must be two percentiles 0 ≤ low < high ≤ 100, e.g. 0.5,99.5, not 5,2.")
    assert parameters.CONNECTIVITY.problem(8) is None


def test_each_default_is_allowed_by_its_own_rule():
    rules = [value for value in vars(parameters).values()
             if isinstance(value, parameters.Parameter)]
    assert len(rules) >= 10
    for rule in rules:
        if rule.default is not None:
            assert rule.problem(rule.default) is None, rule


@pytest.mark.parametrize(("check", "message"), [
    (lambda: KMeansSettings(n_clusters=1).validate(), "CLUSTERS must be a whole number"),
    (lambda: KMeansSettings(sample_size=10).validate(), "SAMPLE_SIZE must be a whole number"),
    (lambda: KMeansSettings(clip_quantiles=(3, 3)).validate(), "CLIP_QUANTILES must be"),
    (lambda: check_sieve_options(-1, 8), "MIN_AREA must be a number of at least 0, not -1"),
    (lambda: check_sieve_options(None, 6), "CONNECTIVITY must be 4 or 8, not 6"),
])
def test_the_core_refuses_with_the_rules_messages(check, message):
    with pytest.raises(InvalidInputError, match=message):
        check()

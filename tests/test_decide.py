"""Decisions: the two decline rules (thresholds, and the learned one), the entries' probabilities, the config."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from retrieval.serving.decide import DecisionConfig, DeclineSignals, entry_scores

# The threshold rule alone: no learned weights.
THRESHOLDS = DecisionConfig(decline_weights=(), min_scope=0.5, known_provider_scope_bonus=0.2)


def signals(**changes) -> DeclineSignals:
    """A question well inside every bar of THRESHOLDS, with `changes`."""
    base = DeclineSignals(similarity=0.95, off_topic=0.80, coverage=1.0, provider_known=False, scope=0.9)
    return dataclasses.replace(base, **changes)


# -- the config ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "message"), [
    ({"temperature": 0.0}, "temperature must be positive, got 0.0"),
    ({"topic_weight": -1.0}, "topic_weight and word_topic_weight must not be negative, got -1.0, 0.8"),
    ({"word_topic_weight": -0.5}, "topic_weight and word_topic_weight must not be negative, got 1.0, -0.5"),
    ({"hits": 0}, "hits must be at least 1 and suggestions not negative, got 0, 3"),
    ({"suggestions": -1}, "hits must be at least 1 and suggestions not negative, got 5, -1"),
    ({"suggest_probability": 1.5}, "suggest_probability must be between 0 and 1, got 1.5"),
])
def test_a_bad_config_is_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        DecisionConfig(**changes)


# -- the threshold rule ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "declined"), [
    ({}, False),
    ({"similarity": 0.90}, True),                    # under min_similarity (0.91)
    ({"off_topic": 0.93}, True),                     # a declined question nearly as close (margin 0.02 < 0.04)
    ({"coverage": 0.40}, True),                      # too few of its words in the knowledge base
    ({"scope": 0.40}, True),                         # the scope model says it is not ours
    ({"scope": None}, False),                        # no scope model: that bar is not applied
    # A known provider lowers the bars and drops the margin and coverage ones.
    ({"provider_known": True, "similarity": 0.85}, False),
    ({"provider_known": True, "similarity": 0.82}, True),   # under 0.91 - 0.08
    ({"provider_known": True, "off_topic": 0.95, "coverage": 0.1}, False),
    ({"provider_known": True, "scope": 0.40}, False),       # over 0.5 - 0.2
    ({"provider_known": True, "scope": 0.20}, True),
])
def test_threshold_rule(changes, declined):
    assert signals(**changes).declines(THRESHOLDS) is declined


def test_the_threshold_rule_applies_without_a_scope_model_even_with_weights():
    """A knowledge base too small to fit the classifiers has no scope: the learned rule cannot run."""
    learned = DecisionConfig()
    assert learned.decline_weights
    assert signals(scope=None, similarity=0.90).declines(learned) is True
    assert signals(scope=None).declines(learned) is False


# -- the learned rule ------------------------------------------------------------------------------------
def test_features_are_the_signals_then_the_provider_then_the_signals_again_when_it_is_known():
    unknown = signals(topic=0.7, words=0.6, topics=0.8).features()
    known = signals(topic=0.7, words=0.6, topics=0.8, provider_known=True).features()
    first = [0.95, 0.95 - 0.80, 1.0, 0.9, 0.7, 0.6, 0.8]
    assert len(unknown) == len(known) == 2 * len(DeclineSignals.NAMES) + 1
    assert unknown == pytest.approx([*first, 0.0, *[0.0] * 7])
    assert known == pytest.approx([*first, 1.0, *first])


def learned(weight_on_similarity: float, bias: float, bar: float = 0.5) -> DecisionConfig:
    weights = [0.0] * (2 * len(DeclineSignals.NAMES) + 1)
    weights[0] = weight_on_similarity
    return DecisionConfig(decline_weights=tuple(weights), decline_bias=bias, min_answer_probability=bar)


@pytest.mark.parametrize(("similarity", "declined"), [(0.95, False), (0.85, True), (0.90, False)])
def test_learned_rule_declines_under_its_probability_bar(similarity, declined):
    config = learned(100.0, -90.0)  # probability 0.5 at similarity 0.90
    s = signals(similarity=similarity, topic=0.5, words=0.5, topics=0.5)
    assert s.answer_probability(config) == pytest.approx(1 / (1 + np.exp(-(100 * similarity - 90))))
    assert s.declines(config) is declined


@pytest.mark.parametrize(("similarity", "near"), [(0.88, True), (0.86, False)])
def test_a_declined_question_is_near_by_the_learned_probability_not_by_similarity(similarity, near):
    config = dataclasses.replace(learned(100.0, -90.0), suggest_probability=0.1, suggest_floor=0.99)
    s = signals(similarity=similarity, topic=0.5, words=0.5, topics=0.5)  # probability 0.12 at 0.88, 0.02 at 0.86
    assert s.declines(config) and s.near(config) is near
    # the hand-set thresholds go by similarity alone
    assert signals(similarity=0.86).near(dataclasses.replace(THRESHOLDS, suggest_floor=0.85))
    assert not signals(similarity=0.86).near(dataclasses.replace(THRESHOLDS, suggest_floor=0.87))


def test_learned_rule_ignores_the_thresholds():
    """With weights, a question under every threshold is answered when the model says it is ours."""
    s = signals(similarity=0.5, off_topic=0.5, coverage=0.0, scope=0.0, topic=0.1, words=0.1, topics=0.1)
    sure = learned(0.0, 5.0)  # probability 0.99 whatever the signals
    assert s.declines(dataclasses.replace(THRESHOLDS, decline_weights=sure.decline_weights, decline_bias=5.0,
                                          min_answer_probability=0.5)) is False
    assert s.declines(THRESHOLDS) is True


def test_learned_rule_with_the_wrong_number_of_weights_is_refused_by_count():
    with pytest.raises(ValueError, match="decline_weights needs 15 numbers, got 2"):
        signals(topic=0.5, words=0.5, topics=0.5).declines(DecisionConfig(decline_weights=(1.0, 2.0)))


# -- entry probabilities ---------------------------------------------------------------------------------
def test_entry_scores_are_probabilities_that_follow_the_fused_scores():
    p = entry_scores(np.array([1.0, 0.9, 0.5]), None, DecisionConfig())
    assert p.sum() == pytest.approx(1.0) and (np.diff(p) < 0).all()
    assert p[0] / p[1] == pytest.approx(np.exp(0.1 / DecisionConfig().temperature))


def test_a_lower_temperature_is_surer():
    fused = np.array([1.0, 0.9])
    assert entry_scores(fused, None, DecisionConfig(temperature=0.01))[0] > \
        entry_scores(fused, None, DecisionConfig(temperature=0.1))[0]


def test_the_topic_model_weighs_each_entry_unless_its_weight_is_zero():
    fused, topic = np.array([3.0, 3.0]), np.log(np.array([0.9, 0.1]))
    assert entry_scores(fused, topic, DecisionConfig(topic_weight=1.0)) == pytest.approx([0.9, 0.1])
    assert entry_scores(fused, topic, DecisionConfig(topic_weight=0.0)) == pytest.approx([0.5, 0.5])
    assert entry_scores(fused, None, DecisionConfig(topic_weight=1.0)) == pytest.approx([0.5, 0.5])


def test_entry_scores_of_huge_signals_do_not_overflow():
    p = entry_scores(np.array([1e6, 1e6 - 1, -1e6]), None, DecisionConfig())
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0) and p[0] == pytest.approx(1.0)

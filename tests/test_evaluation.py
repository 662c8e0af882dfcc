"""The evaluation harness's scoring, which decides what the reports say."""

from __future__ import annotations

import pytest

from evaluation.answers import declines, split
from evaluation.data import MissingData, Paragraph, detokenize, require
from evaluation.metrics import auc, contained, exact_match, f1, ndcg_at_k, recall_at_k


def test_ndcg_and_recall_match_hand_computed_values():
    relevant = {"a": 1, "b": 1}
    assert ndcg_at_k(["a", "b", "c"], relevant) == pytest.approx(1.0)
    assert ndcg_at_k(["c", "a"], relevant) == pytest.approx((1 / 1.5849625) / (1 + 1 / 1.5849625))
    assert recall_at_k(["x", "a"], relevant, k=100) == 0.5
    assert recall_at_k(["x"] * 100 + ["a"], relevant, k=100) == 0.0


def test_squad_answer_scores():
    assert exact_match("The Denver Broncos.", ["Denver Broncos"]) == 1.0
    assert f1("the Broncos won", ["Denver Broncos"]) == pytest.approx(0.5)  # "broncos" of 2 words each
    assert contained("In 2016 the Denver Broncos won [1].", ["Denver Broncos"]) == 1.0
    assert contained("Carolina won.", ["Denver Broncos"]) == 0.0


def test_auc_counts_how_often_positives_outscore_negatives():
    assert auc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert auc([0.3], [0.3]) == 0.5
    assert auc([0.5, 0.1], [0.3]) == 0.5


def test_detokenize_undoes_treebank_spacing():
    assert detokenize("( CNN ) The team 's coach said `` no '' , did n't he ?") == (
        "(CNN) The team's coach said \"no\", didn't he?"
    )


def test_split_holds_out_whole_articles_and_one_paragraph_in_five_of_the_rest():
    paragraphs = [Paragraph(f"{a}-{p}", a, "text") for a in "ABCDEFGHIJ" for p in range(5)]
    articles, held = split(paragraphs)
    assert articles == {"A", "F"}
    assert held == {f"{a}-2" for a in "BCDEGHIJ"}


def test_declines_follows_each_rule():
    r = {"model_refused": False, "top_score": 0.4, "support": 0.3}
    assert not declines(r, 0.3, 0.2)
    assert declines(r, 0.5, 0.2)  # not relevant enough
    assert declines(r, 0.3, 0.5)  # not supported enough
    assert declines({**r, "model_refused": True}, 0.0, 0.0)
    assert not declines({**r, "model_refused": True}, 0.0, 0.0, use_model=False)


def test_a_missing_set_names_what_is_missing(tmp_path):
    with pytest.raises(MissingData, match="missing xquad.en.json"):
        require(tmp_path, "squad-xquad-en", ["xquad.en.json"])

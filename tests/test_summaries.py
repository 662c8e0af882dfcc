"""Map-reduce summaries and their cache, with fake models."""

from __future__ import annotations

import html
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from embeddings.builder import build
from embeddings.config import Config
from embeddings.errors import ConfigError, QuestionError
from embeddings.index import Index
from qa.assistant import Assistant
from qa.render import caveats, drawn_from, summary_html
from qa.retriever import Passage
from qa.summarize import NoSummary, Stopped, check, pack
from tests.fakes import FakeEmbedder, FakeGenerator

LONG = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(300))
DOCS = {"short.txt": "The council approved the budget. The vote was close.", "long.txt": LONG}


def make(tmp_path: Path, docs: dict[str, str], budget: int = 400, context: int = 32768) -> Assistant:
    folder = tmp_path / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text)
    embedder = FakeEmbedder()
    config = Config(docs=folder, index_dir=tmp_path / "index", chunk_tokens=64, chunk_overlap=8,
                    context_tokens=budget)  # fmt: skip
    build(config, embedder, progress=False, log=lambda m: None)

    def reply(messages):
        user = messages[-1]["content"]
        return f"Summary of {len(user)} characters."

    return Assistant(Index.open(config.index_dir, embedder), FakeGenerator(reply, context=context), config)


def test_a_short_document_is_summarised_in_one_call(tmp_path):
    a = make(tmp_path, DOCS)
    summary = a.summarize("short.txt")
    assert summary.calls == 1 and summary.text.startswith("Summary of")
    assert [(p.start, p.end) for p in summary.sources] == [(0, len(DOCS["short.txt"]))]


def test_a_long_document_is_summarised_in_parts_then_combined_within_the_budget(tmp_path):
    a = make(tmp_path, DOCS, budget=400)
    done = []
    summary = a.summarize("long.txt", progress=lambda d, t: done.append((d, t)))
    prompts = a.generator.prompts
    assert len(summary.sources) > 3 and summary.calls == len(prompts) > len(summary.sources)
    assert all(a.generator.count(a.generator.render(m)) <= 400 for m in prompts)
    assert "part 1 of" in prompts[0][-1]["content"] and "Combine them" in prompts[-1][-1]["content"]
    ends = [(p.start, p.end) for p in summary.sources]
    assert all(LONG[s:e] == p.text for (s, e), p in zip(ends, summary.sources, strict=True))
    assert all(b[0] >= a_[1] for a_, b in zip(ends, ends[1:], strict=False)), "parts do not overlap"
    assert done[-1][0] == done[-1][1] == summary.calls


def test_a_summary_longer_than_the_model_can_write_after_its_prompt_is_refused_before_any_call(tmp_path):
    a = make(tmp_path, DOCS, budget=400, context=400 + 200)  # room for a reply of 200 tokens
    assert a.summarize("short.txt").calls == 1  # 3 sentences: 160 tokens at most
    a.config = replace(a.config, summary_sentences=4)  # 208
    for summarize in (lambda: a.summarize("short.txt"), lambda: a.summarize()):
        with pytest.raises(
            ConfigError, match="at most 600 tokens .* take 608: lower --context-tokens or --sentences"
        ):
            summarize()
    assert a.generator.prompts[1:] == [], "refused before the model was asked"


def test_summaries_are_cached_by_content(tmp_path):
    a = make(tmp_path, DOCS)
    first = a.summarize(None)
    calls = len(a.generator.prompts)
    again = a.summarize(None)
    assert again.text == first.text and len(a.generator.prompts) == calls and again.cached == again.calls


def test_another_runtime_of_the_model_writes_its_own_summary(tmp_path):
    a = make(tmp_path, DOCS)
    a.generator.runtime = "onnx-int4 on Ray Serve, 1 replica"
    a.summarize("short.txt")
    b = make(tmp_path, DOCS)
    b.generator.runtime, b.generator.dtype = "transformers", "bfloat16"
    assert b.summarize("short.txt").cached == 0 and len(b.generator.prompts) == 1
    c = make(tmp_path, DOCS)
    c.generator.runtime = "onnx-int4 on Ray Serve, 2 replicas"
    assert c.summarize("short.txt").cached == 1, "more replicas of the same runtime: the same summary"


def test_an_unrelated_change_costs_only_the_changed_document(tmp_path):
    a = make(tmp_path, DOCS)
    a.summarize(None)
    b = make(tmp_path, {**DOCS, "short.txt": "The council rejected the budget."})
    summary = b.summarize(None)
    # Only the changed document and the collection summary are asked again.
    assert len(b.generator.prompts) == 2 and summary.cached == summary.calls - 2


def test_the_collection_summary_names_each_document(tmp_path):
    a = make(tmp_path, DOCS)
    summary = a.summarize(None)
    assert summary.doc_id is None and {p.doc_id for p in summary.sources} == set(DOCS)
    last = a.generator.prompts[-1][-1]["content"]
    assert "documents of a collection" in last and "Summary of" in last
    assert all(f'"{d.title}", quoted:\n> ' in last for d in a.index.documents())


def test_an_unknown_document_id_is_a_clear_error(tmp_path):
    with pytest.raises(QuestionError, match="no document 'nope.txt' in the index"):
        make(tmp_path, DOCS).summarize("nope.txt")


def test_pack_groups_consecutive_items_as_large_as_fit():
    items = [(str(i), "x" * 10) for i in range(7)]
    groups = pack(items, lambda g: len(g) <= 3)
    assert [len(g) for g in groups] == [3, 3, 1]
    assert [i for g in groups for i, _ in g] == [str(i) for i in range(7)]


def test_summaries_too_long_to_combine_two_at_a_time_are_cut_and_the_summary_ends(tmp_path):
    a = make(tmp_path, DOCS, budget=400)
    calls = []

    def verbose(messages):  # each summary about half the budget: no two fit one prompt
        calls.append(messages)
        if len(calls) > 200:
            raise RuntimeError("the summary never ends")
        return " ".join(f"Point {i} of {len(calls)}." for i in range(60))

    a.generator.reply = verbose
    summary = a.summarize("long.txt")
    assert summary.text.startswith("Point")
    assert all(a.generator.count(a.generator.render(m)) <= 400 for m in calls)
    combined = [m[-1]["content"] for m in calls if "Combine them" in m[-1]["content"]]
    assert len(combined) > 1 and combined[-1] == calls[-1][-1]["content"]
    assert all("of these parts together" in c for c in combined[:-1]), "an earlier round merges some parts"
    assert "of the whole document" in combined[-1]


def test_progress_counts_every_round_of_combining_and_reaches_its_total_only_at_the_end(tmp_path):
    many = {f"doc{i:02}.txt": f"Report {i} says the harvest rose by {i} percent." for i in range(30)}
    a = make(tmp_path, many, budget=300)
    done = []
    summary = a.summarize(None, progress=lambda d, t: done.append((d, t)))
    assert summary.calls == len(a.generator.prompts) == done[-1][0] == done[-1][1]
    assert "groups of the 30 documents" in a.generator.prompts[-1][-1]["content"], "grouped in rounds"
    assert all(d < t for d, t in done[:-1]), "never done before the last call"


def test_a_collection_combined_in_groups_is_told_how_many_documents_it_holds(tmp_path):
    many = {f"doc{i:02}.txt": f"Report {i} says the harvest rose by {i} percent." for i in range(30)}
    a = make(tmp_path, many, budget=300)
    a.summarize(None)
    intros = [
        m[-1]["content"].split("\n")[0] for m in a.generator.prompts if "of a collection" in m[-1]["content"]
    ]
    assert len(intros) > 1 and all("of the 30 documents of a collection" in i for i in intros)
    assert "Group 1, quoted" in a.generator.prompts[-1][-1]["content"]
    first, last = intros[0], intros[-1]
    assert "groups" not in first and "of these documents together" in first, "a first round merges documents"
    assert "groups of the 30 documents" in last and "summary of the whole collection" in last


def test_a_summary_whose_parts_were_cut_to_fit_says_so(tmp_path):
    a = make(tmp_path / "long", DOCS, budget=400)
    a.generator.reply = lambda m: " ".join(f"Point {i} of the part." for i in range(60))
    summary = a.summarize("long.txt")
    assert summary.shortened
    page = summary_html(summary.title, summary.text, summary.sources, shortened=summary.shortened)
    assert "Summaries of parts were cut to fit the prompt that combined them" in page
    a = make(tmp_path / "short", DOCS, budget=400)
    a.generator.reply = "The council approved the budget."
    assert not a.summarize("long.txt").shortened


def test_a_summary_too_long_for_a_combining_prompt_alone_is_cut_to_fit(tmp_path):
    a = make(
        tmp_path, {**DOCS, "more.txt": "The river flooded the valley. The town was rebuilt."}, budget=300
    )
    asked = []

    def reply(messages):
        asked.append(messages)
        if "long.txt" in messages[-1]["content"] or "Sentence number" in messages[-1]["content"]:
            return " ".join(f"Point {i} is made at length here." for i in range(80))  # over the budget alone
        return "A short summary."

    a.generator.reply = reply
    summary = a.summarize(None)
    assert summary.text
    assert all(a.generator.count(a.generator.render(m)) <= 300 for m in asked)


def test_a_summary_stops_at_once_when_its_caller_goes_away_and_keeps_the_parts_done(tmp_path):
    a = make(tmp_path, DOCS)
    stop, pieces = threading.Event(), []

    def reply(messages):
        if len(a.generator.prompts) == 2:
            stop.set()  # the caller leaves while the second part is written
        return "Part summary. " * 20

    a.generator.reply = reply
    stream = a.generator.stream

    def counted(messages, max_new_tokens):
        for piece in stream(messages, max_new_tokens):
            pieces.append(piece)
            yield piece

    a.generator.stream = counted
    with pytest.raises(Stopped):
        a.summarize("long.txt", stop=stop)
    assert len(a.generator.prompts) == 2 and len(pieces) == 41, (
        "the second part stopped after its first piece"
    )
    a.generator.reply = lambda m: "Part summary."
    summary = a.summarize("long.txt")
    assert summary.cached == 1, "the part done before the caller left is not asked again"


def test_an_empty_reply_is_not_kept_and_a_summary_of_nothing_is_an_error(tmp_path):
    a = make(tmp_path, DOCS)
    a.generator.reply = ""
    with pytest.raises(NoSummary, match="the model wrote no summary"):
        a.summarize("short.txt")
    a.generator.reply = "The council approved the budget."
    summary = a.summarize("short.txt")
    assert summary.text == "The council approved the budget." and summary.cached == 0


def test_a_collection_goes_on_without_a_document_the_model_wrote_nothing_for_and_says_so(tmp_path):
    a = make(tmp_path, {**DOCS, "more.txt": "The river flooded the valley."})
    a.generator.reply = lambda m: "" if "river" in m[-1]["content"] else "The council approved the budget."
    summary = a.summarize(None)
    last = a.generator.prompts[-1][-1]["content"]
    assert summary.text and "the 2 documents" in last and '"more", quoted' not in last
    river = '"The river flooded the valley." (more.txt)'  # the document's title (its first line) and id
    assert summary.skipped == [river] and {p.doc_id for p in summary.sources} == {"short.txt", "long.txt"}
    assert drawn_from(summary.sources) == f"Drawn from {len(summary.sources)} passages of 2 documents"
    note = f"Not in this summary: the model wrote nothing for {river}."
    assert html.escape(note) in summary_html(
        summary.title, summary.text, summary.sources, skipped=summary.skipped
    )


def test_a_part_the_model_wrote_nothing_for_is_named_and_not_counted_as_drawn_on(tmp_path):
    a = make(tmp_path, DOCS, budget=400)
    a.generator.reply = lambda m: (
        "" if "part 2 of" in m[-1]["content"] else "The council approved the budget."
    )
    summary = a.summarize("long.txt")
    parts = len(summary.sources) + 1
    assert summary.skipped == [f'part 2 of {parts} of "Sentence number 0 talks about topic 0."']
    part_prompts = [
        m[-1]["content"] for m in a.generator.prompts if f"of {parts} of the document" in m[-1]["content"]
    ]
    second = part_prompts[1].split("quoted:\n", 1)[1]
    assert all(p.text.split()[:4] != second.removeprefix("> ").split()[:4] for p in summary.sources)


def test_a_summary_as_json_names_its_sources_without_their_text(tmp_path):
    data = make(tmp_path, DOCS).summarize(None).to_dict()
    assert {s["doc_id"] for s in data["sources"]} == set(DOCS)
    assert all("text" not in s and s["end"] > s["start"] for s in data["sources"])


def test_a_chinese_or_japanese_summary_keeps_its_last_sentence():
    text = "北京是中国的首都。上海是中国最大的城市。"
    sources = [Passage("zh.txt", "城市", 0, len(text), text, 1.0, {})]
    for written in (text, "北京是中国的首都。\n上海是中国最大的城市。"):
        kept, left_out, supported = check(written, sources, 0.5)
        assert supported and left_out == [] and "上海是中国最大的城市。" in kept


ARTICLE = (
    "Ahmad Massoud met Amir Khan Muttaqi in Tehran. The meeting was mediated by Ismail Khan, the former "
    "governor of Herat. India sent 50,000 tonnes of wheat to Afghanistan."
)
SOURCES = [Passage("a.txt", "Talks in Tehran", 0, len(ARTICLE), ARTICLE, 1.0, {})]


def test_a_summary_sentence_the_document_does_not_bear_out_is_left_out_and_listed():
    summary = ("Ahmad Massoud met Amir Khan Muttaqi in Tehran. India sent 80,000 tonnes of rice to Pakistan. "
               "Ismail Khan, the former governor of Herat, mediated the meeting.")  # fmt: skip
    text, left_out, supported = check(summary, SOURCES, 0.5)
    assert supported and left_out == ["India sent 80,000 tonnes of rice to Pakistan."]
    assert (
        text
        == "Ahmad Massoud met Amir Khan Muttaqi in Tehran. Ismail Khan, the former governor of Herat, mediated the meeting."
    )
    assert caveats(left_out, supported)[1] == "  - India sent 80,000 tonnes of rice to Pakistan."


def test_a_summary_sentence_may_restate_its_documents_title_but_never_lean_on_another_documents():
    council = "The council approved the budget on Monday. The mayor said roads would come first."
    harvest = "Farmers were pleased with the wheat harvest. The festival drew large crowds."
    sources = [Passage("council.md", "Council approves budget", 0, len(council), council, 1.0, {}),
               Passage("harvest.md", "Harvest festival", 0, len(harvest), harvest, 1.0, {})]  # fmt: skip
    threshold = Config().support_threshold
    summary = "Overall, the council approved the budget. The harvest festival approved the budget."
    text, left_out, supported = check(summary, sources, threshold)
    assert supported and text == "Overall, the council approved the budget."
    assert left_out == ["The harvest festival approved the budget."], (
        "one document's title words held by another's"
    )


def test_a_line_that_only_leads_into_a_list_is_kept_and_never_listed_as_not_borne_out():
    summary = ("Here are the key points of the document:\n- Ahmad Massoud met Amir Khan Muttaqi in Tehran\n"
               "- India sent 80,000 tonnes of rice")  # fmt: skip
    text, left_out, supported = check(summary, SOURCES, 0.5)
    assert supported and left_out == ["- India sent 80,000 tonnes of rice"]
    assert text == "Here are the key points of the document:\n- Ahmad Massoud met Amir Khan Muttaqi in Tehran"
    heading = check("## Summary\nAhmad Massoud met Amir Khan Muttaqi in Tehran. India sent 50,000 tonnes of wheat.",
                    SOURCES, 0.5)[0]  # fmt: skip
    assert heading.startswith("## Summary\nAhmad Massoud"), "a heading stays on its own line"
    assert check("**Key points:**\n- India sent 80,000 tonnes of rice", SOURCES, 0.5)[2] is False, (
        "a lead-in alone holds nothing up"
    )
    dangling = check("Ahmad Massoud met Amir Khan Muttaqi in Tehran.\nKey points:\n- India sent 80,000 tonnes of rice",
                     SOURCES, 0.5)  # fmt: skip
    assert dangling[0] == "Ahmad Massoud met Amir Khan Muttaqi in Tehran.", (
        "a lead-in to nothing kept goes too"
    )


def test_headings_stay_headings_on_lines_of_their_own_whatever_their_words():
    summary = ("## Diplomatic Talks\nAhmad Massoud met Amir Khan Muttaqi in Tehran.\n## Humanitarian Aid\n"
               "India sent 50,000 tonnes of wheat to Afghanistan.")  # fmt: skip
    assert check(summary, SOURCES, 0.5)[:2] == (summary, [])


def test_a_numbered_list_stays_a_list_and_its_numbers_are_never_listed_as_not_borne_out():
    summary = ("Key points:\n1. Ahmad Massoud met Amir Khan Muttaqi in Tehran.\n2. India sent 50,000 tonnes of wheat "
               "to Afghanistan.\n3. India sent 80,000 tonnes of rice to Pakistan.")  # fmt: skip
    text, left_out, supported = check(summary, SOURCES, 0.5)
    assert supported and left_out == ["3. India sent 80,000 tonnes of rice to Pakistan."]
    assert text == ("Key points:\n1. Ahmad Massoud met Amir Khan Muttaqi in Tehran.\n"
                    "2. India sent 50,000 tonnes of wheat to Afghanistan.")  # fmt: skip


@pytest.mark.parametrize(
    "claim",
    ["India sent 80,000 tonnes of rice to Pakistan:", "# India sent 80,000 tonnes of rice to Pakistan",
     "The meeting ended without a deal:", "Ismail Khan did not mediate the meeting:"],
)  # fmt: skip
def test_a_claim_written_as_a_heading_or_lead_in_is_still_checked(claim):
    text, left_out, supported = check(
        f"{claim}\nAhmad Massoud met Amir Khan Muttaqi in Tehran.", SOURCES, 0.5
    )
    assert left_out == [claim] and text == "Ahmad Massoud met Amir Khan Muttaqi in Tehran."


def test_a_summary_sentence_with_a_citation_mark_is_checked_by_its_words():
    summary = "India sent 50,000 tonnes of wheat to Afghanistan [1]. India sent 80,000 tonnes of rice [1]."
    text, left_out, supported = check(summary, SOURCES, 0.5)
    assert supported and text == "India sent 50,000 tonnes of wheat to Afghanistan [1]."
    assert left_out == ["India sent 80,000 tonnes of rice [1]."]


def test_a_summary_written_as_a_list_is_checked_item_by_item_and_stays_a_list():
    summary = ("- Ahmad Massoud met Amir Khan Muttaqi in Tehran\n- India sent 80,000 tonnes of rice\n"
               "- India sent 50,000 tonnes of wheat to Afghanistan")  # fmt: skip
    text, left_out, supported = check(summary, SOURCES, 0.5)
    assert supported and left_out == ["- India sent 80,000 tonnes of rice"]
    assert (
        text
        == "- Ahmad Massoud met Amir Khan Muttaqi in Tehran\n- India sent 50,000 tonnes of wheat to Afghanistan"
    )
    assert "Tehran<br>- India sent 50,000" in summary_html("Talks", text, SOURCES), (
        "the page shows it as lines"
    )


def test_a_last_sentence_cut_off_at_the_length_limit_is_left_out_and_named_as_cut(tmp_path):
    a = make(tmp_path, DOCS)
    a.generator.reply = "The council approved the budget. " + "The vote was very " * 100
    summary = a.summarize("short.txt")
    assert summary.text == "The council approved the budget." and summary.left_out == []
    assert summary.unfinished.startswith("The vote was very") and not summary.unfinished.endswith(".")
    page = summary_html(summary.title, summary.text, summary.sources, unfinished=summary.unfinished)
    assert "Left out, the last sentence, cut at the summary&#x27;s length limit: The vote was" in page


def test_a_lists_last_item_cut_off_at_the_length_limit_is_left_out_too(tmp_path):
    a = make(tmp_path, DOCS)
    a.generator.reply = "- The council approved the budget\n- The vote was " + "very " * 200
    summary = a.summarize("short.txt")
    assert summary.text == "- The council approved the budget" and summary.unfinished.startswith(
        "- The vote was"
    )


def test_a_last_sentence_without_a_full_stop_is_kept_when_the_reply_ended_on_its_own(tmp_path):
    a = make(tmp_path, DOCS)
    a.generator.reply = "The council approved the budget. The vote was close"
    summary = a.summarize("short.txt")
    assert summary.text == "The council approved the budget. The vote was close"
    assert summary.left_out == [] and summary.unfinished == ""


def test_a_summary_nothing_bears_out_is_kept_whole_and_marked():
    summary = "The council approved the budget. The vote was close."
    assert check(summary, SOURCES, 0.5) == (summary, [], False)
    assert caveats([], False) == ["The documents do not bear out this summary as written: read it with care."]


def test_a_summary_sentence_that_names_its_document_by_title_is_held_by_it():
    pricing = "Pricing\n\nThe Pro plan costs 30 dollars a month and includes 5 seats."
    sources = [*SOURCES, Passage("page.html", "Pricing", 0, len(pricing), pricing, 1.0, {})]
    summary = ('The "Pricing" page says the Pro plan costs 30 dollars a month. '
               'The "Pricing" page says the Pro plan costs 40 dollars a month. '
               'The "Talks in Tehran" document says Ismail Khan mediated the meeting. '
               'The "Pricing" page says Ismail Khan mediated the meeting.')  # fmt: skip
    text, left_out, supported = check(summary, sources, 0.6)
    assert supported and text == (
        'The "Pricing" page says the Pro plan costs 30 dollars a month. '
        'The "Talks in Tehran" document says Ismail Khan mediated the meeting.'
    )
    assert left_out == [
        'The "Pricing" page says the Pro plan costs 40 dollars a month.',
        'The "Pricing" page says Ismail Khan mediated the meeting.',
    ]
    # A title is not a question: one that says "not" does not let a sentence deny its passage.
    denied = [Passage("a.txt", "Not a quiet week", 0, len(ARTICLE), ARTICLE, 1.0, {})]
    summary = "Ahmad Massoud met Amir Khan Muttaqi in Tehran. Ahmad Massoud did not meet Amir Khan Muttaqi in Tehran."
    assert check(summary, denied, 0.6)[1] == ["Ahmad Massoud did not meet Amir Khan Muttaqi in Tehran."]


def test_what_a_summary_left_out_and_drew_on_is_counted_in_words_that_agree():
    assert caveats(["A."], True) == [
        "Left out, 1 sentence of the model's summary the documents do not bear out:",
        "  - A.",
    ]
    assert caveats(["A.", "B."], True)[0].startswith("Left out, 2 sentences of")
    assert drawn_from(SOURCES) == "Drawn from 1 passage of 1 document"
    other = Passage("b.txt", "Other", 0, 5, "Other", 1.0, {})
    assert drawn_from([*SOURCES, SOURCES[0], other]) == "Drawn from 3 passages of 2 documents"

"""`docqa ask` prints only the checked answer on stdout: never a draft it then withdraws; `docqa chat`
answers questions from stdin in turn."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from embeddings.builder import build
from embeddings.config import Config
from embeddings.index import Index
from qa import cli
from qa.answer import NOT_IN_DOCUMENTS
from qa.assistant import Assistant
from tests.fakes import FakeEmbedder, FakeGenerator


def wheat_index(tmp_path: Path, **settings) -> Config:
    """One document about wheat, indexed with the fake embedder in tmp_path/index."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "wheat.txt").write_text("India sent 50,000 tonnes of wheat to Afghanistan through Iran.")
    config = Config(docs=docs, index_dir=tmp_path / "index", **settings)
    build(config, FakeEmbedder(), progress=False, log=lambda m: None)
    return config


@pytest.fixture
def ask(tmp_path: Path, monkeypatch):
    config, embedder = wheat_index(tmp_path, min_relevance=0.0), FakeEmbedder()

    def run(reply: str, *flags: str) -> tuple[str, str]:
        assistant = Assistant(Index.open(config.index_dir, embedder), FakeGenerator(reply), config)
        monkeypatch.setattr(cli, "_assistant", lambda args, **settings: assistant)
        assert cli.main(["ask", "How much wheat did India send?", *flags]) == 0
        return run.capsys.readouterr()

    return run


def test_a_question_longer_than_the_context_budget_is_an_error_that_says_what_to_do(
    tmp_path, monkeypatch, capsys
):
    config = wheat_index(tmp_path, min_relevance=0.0, context_tokens=256)
    assistant = Assistant(Index.open(config.index_dir, FakeEmbedder()), FakeGenerator("Yes. [1]"), config)
    monkeypatch.setattr(cli, "_assistant", lambda args, **settings: assistant)
    question = "How much wheat did India send " * 50 + "?"  # under the character limit, over the budget
    assert len(question) < config.max_question_chars
    assert cli.main(["ask", question]) == 2
    out, err = capsys.readouterr()
    assert "shorten the question or raise the context budget (--context-tokens" in err and out == ""


def test_a_withdrawn_draft_never_reaches_stdout(ask, capsys):
    ask.capsys = capsys
    out, err = ask("India sent 90,000 tonnes of rice to Pakistan. [1]")
    assert NOT_IN_DOCUMENTS in out and "90,000" not in out
    assert "do not hold" in out  # the reason is given
    assert "90,000" not in err, "no draft on stderr unless asked for"


def test_the_checked_answer_is_printed_with_its_sources(ask, capsys):
    ask.capsys = capsys
    out, _ = ask("India sent 50,000 tonnes of wheat. [1]")
    assert out.splitlines()[0] == "India sent 50,000 tonnes of wheat. [1]"
    assert "wheat.txt" in out and "supported" in out


def test_the_draft_on_stderr_is_marked_and_its_withdrawal_said(ask, capsys):
    ask.capsys = capsys
    out, err = ask("India sent 90,000 tonnes of rice to Pakistan. [1]", "--draft")
    assert "draft (unchecked): India sent 90,000" in err and "[draft withdrawn:" in err
    assert "90,000" not in out


def test_chat_reads_questions_from_stdin_and_answers_each_in_turn(tmp_path, monkeypatch, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "talks.txt").write_text(
        "The meeting in Tehran was mediated by Ismail Khan. Ismail Khan was governor of Herat province."
    )
    embedder = FakeEmbedder()
    config = Config(docs=docs, index_dir=tmp_path / "index", min_relevance=0.0)
    build(config, embedder, progress=False, log=lambda m: None)

    def reply(messages) -> str:
        user = messages[-1]["content"]
        if user.startswith("Conversation:"):  # the rewrite
            return "Where was Ismail Khan governor?"
        if "Question: Where was Ismail Khan governor?" in user:
            return "Ismail Khan was governor of Herat province. [1]"
        return "The meeting was mediated by Ismail Khan. [1]"

    assistant = Assistant(Index.open(config.index_dir, embedder), FakeGenerator(reply), config)
    monkeypatch.setattr(cli, "_assistant", lambda args, **settings: assistant)
    lines = "Who mediated the meeting?\n\n   \nWhere was he governor?\n"

    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    assert cli.main(["chat"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("The meeting was mediated by Ismail Khan. [1]")
    assert (
        "(asked as: Where was Ismail Khan governor?)\nIsmail Khan was governor of Herat province. [1]" in out
    )
    assert out.count("Sources:") == 2 and "talks.txt" in out and "Traceback" not in err

    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    assert cli.main(["chat", "--json"]) == 0
    turns = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [t["question"] for t in turns] == ["Who mediated the meeting?", "Where was he governor?"]
    assert turns[1]["standalone"] == "Where was Ismail Khan governor?"
    assert turns[1]["answer"]["citations"][0]["supported"] is True


def test_chat_on_a_terminal_prompts_for_each_question_until_end_of_input(monkeypatch, capsys):
    typed = iter(["Who mediated the meeting?", "Where was he governor?"])
    prompts = []

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    assert list(cli._lines(interactive=True)) == ["Who mediated the meeting?", "Where was he governor?"]
    out, err = capsys.readouterr()
    assert err.count("? ") == 3 and out == "", (
        "the prompt goes to the terminal, not to stdout with the answers"
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["ask", "   "], "the question is empty"),
        (["ask", "?!?..."], "has no words: type a question"),
        (["ask", "Who?", "--since", "2024-13-01"], "since must be a date like 2024-05-31"),
        (["chat", "--until", "May"], "until must be a date like 2024-05-31"),
    ],
)
def test_a_question_or_scope_docqa_cannot_use_is_refused_before_the_models_load(
    monkeypatch, capsys, argv, says
):
    def load(args, **settings):
        raise AssertionError("the models were loaded before the question was checked")

    monkeypatch.setattr(cli, "_assistant", load)
    assert cli.main(argv) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["ask", "Who sent wheat?", "--doc", "typo.txt"], "no document 'typo.txt'"),
        (["chat", "--doc", "typo.txt"], "no document 'typo.txt'"),
        (["ask", "Who sent wheat?", "--since", "2031-01-01"], "no indexed document matches the scope"),
        (["summarize", "typo.txt"], "no document 'typo.txt'"),
    ],
)
def test_a_document_or_scope_the_index_lacks_is_refused_before_the_models_load(
    tmp_path, monkeypatch, capsys, argv, says
):
    config = wheat_index(tmp_path)

    def load(args, **settings):
        raise AssertionError("the models were loaded before the scope was checked")

    monkeypatch.setattr(cli, "_assistant", load)
    assert cli.main([*argv, "--index", str(config.index_dir)]) == 2
    assert says in capsys.readouterr().err


def test_ask_loads_the_embedding_model_on_the_device_and_in_the_precision_asked_for(
    tmp_path, monkeypatch, capsys
):
    from embeddings.embedder import Embedder

    config = wheat_index(tmp_path)
    loaded = []

    def load(name, device=None, dtype=None):
        loaded.append((name, device, dtype))
        return FakeEmbedder()

    monkeypatch.setattr(Embedder, "load", staticmethod(load))
    monkeypatch.setattr("qa.assistant.load_generator", lambda config: FakeGenerator("India sent wheat. [1]"))
    argv = [
        "ask",
        "Who sent wheat?",
        "--index",
        str(config.index_dir),
        "--device",
        "cpu",
        "--dtype",
        "float32",
    ]
    assert cli.main(argv) == 0
    assert loaded == [(FakeEmbedder().name, "cpu", "float32")]


@pytest.mark.parametrize("sample", [[], ["--sample", "0"]])
def test_check_reports_a_damaged_index_as_a_problem_whatever_it_samples(tmp_path, capsys, sample):
    config = wheat_index(tmp_path)
    [counts] = config.index_dir.rglob("counts.npy")
    damaged = bytearray(counts.read_bytes())
    damaged[-1] ^= 0xFF
    counts.write_bytes(bytes(damaged))
    assert cli.main(["check", "--index", str(config.index_dir), *sample]) == 1, "1: the index is damaged"
    out, err = capsys.readouterr()
    assert "problem: the index does not load" in out and "is damaged" in out and "after deleting it" in err


@pytest.mark.parametrize("command", ["index", "search", "documents", "check", "ask"])
def test_an_index_path_that_is_a_file_is_an_error_that_says_so(tmp_path, capsys, command):
    index = tmp_path / "notes.txt"
    index.write_text("not an index")
    argv = {
        "index": ["index", str(tmp_path)],
        "search": ["search", "wheat"],
        "ask": ["ask", "How much wheat?"],
    }
    assert cli.main([*argv.get(command, [command]), "--index", str(index)]) == 2
    assert f"{index} is a file, not an index folder" in capsys.readouterr().err
    assert index.read_text() == "not an index"


@pytest.mark.parametrize(("argv", "says"), [(["serve", "--port", "70000"], "must be at most 65535, got 70000"),
                                            (["search", "wheat", "--k", "abc"], "must be a whole number, got 'abc'"),
                                            (["ask", "Why?", "--answer-tokens", "0"], "must be 1 or more, got 0"),
                                            (["index", "--wait", "nan"], "must be 0 or more seconds, got nan"),
                                            (["check", "--sample", "-5"], "must be 0 or more, got -5"),
                                            (["summarize", "--sentences", "21"], "--sentences: must be at most 20, got 21"),
                                            (["index", "--batch-size", "5000"], "--batch-size: must be at most 2048, got 5000"),
                                            (["ask", "Why?", "--context-tokens", "100"],
                                             "--context-tokens: must be 256 or more, got 100")])  # fmt: skip
def test_a_number_out_of_range_or_not_a_number_is_a_usage_error(capsys, argv, says):
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 2 and says in capsys.readouterr().err


def test_a_summary_prints_clean_lines_and_its_progress_ends_its_line(tmp_path, monkeypatch, capsys):
    config = wheat_index(tmp_path)
    reply = "India sent 50,000 tonnes of wheat to Afghanistan."
    assistant = Assistant(Index.open(config.index_dir, FakeEmbedder()), FakeGenerator(reply), config)
    monkeypatch.setattr(cli, "_assistant", lambda args, **settings: assistant)
    assert cli.main(["summarize", "wheat.txt", "--index", str(config.index_dir)]) == 0
    out, err = capsys.readouterr()
    assert out.split("\n\n")[1] == reply and "\r" not in out
    assert err == "summarising: 1/1 parts\n", "in a log, progress is a line of its own"


def test_summarise_as_the_page_spells_it_lists_every_document_it_drew_on(tmp_path, monkeypatch, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"report{i:02}.txt").write_text(f"Report {i} says the wheat harvest rose by {i} percent.")
    config = Config(docs=docs, index_dir=tmp_path / "index")
    build(config, FakeEmbedder(), progress=False, log=lambda m: None)
    reply = "The wheat harvest rose."
    assistant = Assistant(Index.open(config.index_dir, FakeEmbedder()), FakeGenerator(reply), config)
    monkeypatch.setattr(cli, "_assistant", lambda args, **settings: assistant)
    assert cli.main(["summarise"]) == 0
    out = capsys.readouterr().out
    assert "report00.txt, report01.txt" in out and "report09.txt and 2 more" in out


def test_an_answer_cut_at_the_token_limit_says_so_and_how_to_raise_it(tmp_path, monkeypatch, capsys):
    config = wheat_index(tmp_path, min_relevance=0.0, answer_tokens=12)
    reply = "India sent 50,000 tonnes of wheat to Afghanistan through Iran. [1] " * 3
    assistant = Assistant(Index.open(config.index_dir, FakeEmbedder()), FakeGenerator(reply), config)
    monkeypatch.setattr(cli, "_assistant", lambda args, **settings: assistant)
    assert cli.main(["ask", "How much wheat did India send?"]) == 0
    out, _ = capsys.readouterr()
    assert (
        out.startswith("India sent 50,000 tonnes") and "cut at the limit" in out and "--answer-tokens" in out
    )
    assert cli.main(["ask", "How much wheat did India send?", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cut"] is True
    assistant.generator = FakeGenerator("India sent 50,000 tonnes. [1]")  # 10 tokens
    assert cli.main(["ask", "How much wheat did India send?"]) == 0
    assert "cut at the limit" not in capsys.readouterr().out


def test_search_names_a_document_the_index_lacks(tmp_path, capsys):
    config = wheat_index(tmp_path)
    argv = ["search", "wheat", "--index", str(config.index_dir), "--method", "bm25", "--doc", "rice.txt"]
    assert cli.main(argv) == 2
    assert "no document 'rice.txt' in the index (removed since, or not its id)" in (
        err := capsys.readouterr().err
    )
    assert "`docqa documents`" in err


def test_on_a_terminal_stderr_says_what_docqa_is_doing_on_one_line_then_clears_it(ask, capsys, monkeypatch):
    ask.capsys = capsys
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    out, err = ask("India sent 50,000 tonnes of wheat. [1]")
    assert "docqa: searching, then reading the passages ..." in err
    assert "the model is writing (1 word) ..." in err and "(2 words)" in err
    assert "\n" not in err and err.endswith("\r\033[K"), "one line, rewritten, and cleared at the end"
    assert out.startswith("India sent 50,000 tonnes of wheat. [1]\n")


@pytest.mark.parametrize("flags", [(), ("--json",), ("--draft",)])
def test_chat_goes_on_after_a_question_too_long_for_the_context_budget(tmp_path, monkeypatch, capsys, flags):
    config = wheat_index(tmp_path, min_relevance=0.0, context_tokens=256)
    generator = FakeGenerator("India sent 50,000 tonnes of wheat. [1]")
    assistant = Assistant(Index.open(config.index_dir, FakeEmbedder()), generator, config)
    monkeypatch.setattr(cli, "_assistant", lambda args, **settings: assistant)
    too_long = "How much wheat did India send " * 50 + "?"  # under the character limit, over the budget
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{too_long}\nHow much wheat did India send?\n"))
    assert cli.main(["chat", *flags]) == 0
    out, err = capsys.readouterr()
    assert "docqa chat: the question alone needs more than the 256-token context budget" in err
    assert "50,000 tonnes" in out, "the next question is still answered"
    if "--json" in flags:
        refused, answered = [json.loads(line) for line in out.splitlines()]
        assert "context budget" in refused["error"] and "50,000 tonnes" in answered["answer"]["text"], (
            "a line out for each line in"
        )


def test_an_index_folder_docqa_cannot_write_is_an_error_that_says_what_to_do(tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Wheat was sent from India.")
    assert cli.main(["index", str(docs), "--index", str(tmp_path / "afile" / "index"), "--quiet"]) == 2
    said = capsys.readouterr().err
    assert "could not read or write a file" in said and "Not a directory" in said
    assert "check that the paths given are folders docqa can write to" in said and "Traceback" not in said


def test_serve_without_docs_rebuilds_from_the_folder_the_index_was_built_from(tmp_path, capsys, monkeypatch):
    config = wheat_index(tmp_path)
    monkeypatch.chdir(tmp_path)  # not where the documents are
    assert cli._served_docs(config.index_dir) == config.docs.resolve()
    assert capsys.readouterr().err == ""
    # An index built by an older docqa records no folder: serve says to give --docs.
    from embeddings import store

    folder = store.current(config.index_dir)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["docs"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert cli._served_docs(config.index_dir) == Path("seeds")
    assert "does not record the folder it was built from" in capsys.readouterr().err


def test_an_error_that_is_not_the_disk_is_not_passed_off_as_one(tmp_path, monkeypatch):
    def refused(args):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(cli, "_documents", refused)
    with pytest.raises(ConnectionRefusedError):
        cli.main(["documents", "--index", str(tmp_path)])


def test_output_read_by_head_ends_quietly_when_head_has_read_enough(tmp_path):
    import subprocess

    script = (
        "import sys\n"
        "from qa import cli\n"
        "def many(args):\n"
        "    for i in range(200_000):\n"
        "        print('line', i, flush=True)\n"
        "    return 0\n"
        "cli._documents = many\n"
        f"sys.exit(cli.main(['documents', '--index', {str(tmp_path)!r}]))\n"
    )
    done = subprocess.run(["bash", "-c", f'{sys.executable} -c "$0" | head -1; echo "status ${{PIPESTATUS[0]}}" >&2', script],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert done.stdout == "line 0\n"
    assert "status 141" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_context_budget_the_model_cannot_answer_after_is_refused_before_any_question(
    tmp_path, monkeypatch, capsys
):
    from embeddings.embedder import Embedder

    config = wheat_index(tmp_path)
    generator = FakeGenerator("India sent wheat. [1]", context=4096)  # a GPU's static cache
    monkeypatch.setattr(Embedder, "load", staticmethod(lambda name, device=None, dtype=None: FakeEmbedder()))
    monkeypatch.setattr("qa.assistant.load_generator", lambda config: generator)
    argv = ["ask", "Who sent wheat?", "--index", str(config.index_dir), "--context-tokens", "4000"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "at most 4,096 tokens" in err and "take 4,200: lower --context-tokens or --answer-tokens" in err
    assert generator.prompts == [], "refused before the model was asked"
    assert cli.main([*argv[:-1], "3896"]) == 0, "a budget that leaves room for the answer is taken"


def test_a_summary_takes_a_context_budget_its_own_length_fits_beside(tmp_path, monkeypatch, capsys):
    from embeddings.embedder import Embedder
    from qa.summarize import reply_tokens

    config = wheat_index(tmp_path)
    generator = FakeGenerator("India sent wheat to Afghanistan.", context=4096)  # a GPU's static cache
    monkeypatch.setattr(Embedder, "load", staticmethod(lambda name, device=None, dtype=None: FakeEmbedder()))
    monkeypatch.setattr("qa.assistant.load_generator", lambda config: generator)
    fits = 4096 - reply_tokens(3)  # a three-sentence summary fits; an answer of 200 tokens would not
    argv = ["summarize", "--index", str(config.index_dir), "--context-tokens", str(fits)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert "India sent wheat" in capsys.readouterr().out
    assert cli.main([*argv[:-1], str(fits + 1)]) == 2
    assert "lower --context-tokens or --sentences" in capsys.readouterr().err


def test_ask_json_has_the_same_shape_when_no_passage_is_relevant_enough(tmp_path, monkeypatch, capsys):
    config = wheat_index(tmp_path, min_relevance=0.99)  # the gate declines before any model call
    assistant = Assistant(Index.open(config.index_dir, FakeEmbedder()), FakeGenerator("Yes. [1]"), config)
    monkeypatch.setattr(cli, "_assistant", lambda args, **settings: assistant)
    assert cli.main(["ask", "Who painted the ceiling of the chapel?", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["abstained"] and answer["tokens"] == {"prompt": 0, "completion": 0}, (
        "no model call: none read"
    )


def test_ray_actors_without_ray_is_an_error_not_ignored(tmp_path, capsys):
    assert cli.main(["index", str(tmp_path), "--index", str(tmp_path / "index"), "--ray-actors", "2"]) == 2
    assert "--ray-actors is for --ray" in capsys.readouterr().err and not (tmp_path / "index").exists()


def test_a_path_with_a_tilde_the_shell_left_is_the_home_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "note.txt").write_text("India sent 50,000 tonnes of wheat.")
    monkeypatch.setattr("embeddings.builder.Embedder.load", lambda *a, **k: FakeEmbedder())
    code = cli.main(["index", "~/papers", "--index", "~/papers/.docqa", "--quiet"])
    assert "no documents at ~" not in capsys.readouterr().err
    assert code == 0 and (tmp_path / "papers" / ".docqa" / "CURRENT").exists()


def test_ctrl_c_says_the_index_was_kept_only_where_the_command_writes_one(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_assistant", interrupted)
    assert cli.main(["ask", "How much wheat?", "--index", str(wheat_index(tmp_path).index_dir)]) == 130
    assert capsys.readouterr().err.strip() == "docqa ask: interrupted"
    monkeypatch.setattr("embeddings.builder.build", interrupted)
    assert cli.main(["index", str(tmp_path / "docs"), "--index", str(tmp_path / "index"), "--quiet"]) == 130
    assert capsys.readouterr().err.strip() == "docqa index: interrupted; the index was left as it was"


def test_ask_json_with_draft_shows_the_draft_on_stderr_and_the_answer_as_json(ask, capsys):
    ask.capsys = capsys
    out, err = ask("India sent 50,000 tonnes of wheat. [1]", "--json", "--draft")
    assert json.loads(out)["text"].startswith("India sent 50,000 tonnes") and "draft (unchecked)" in err

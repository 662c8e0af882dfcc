"""The evaluation harness: `python -m evaluation` (make eval) measures retrieval, answers,
refusals and summaries on public sets and writes reports/eval.json and reports/eval.md."""

"""A small mixed collection for the integration and browser tests: the sample article, a
three-page PDF whose last page holds one fact, a Word file and a dated note, each about
something else."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import SEEDS
from tests.office_files import docx_file
from tests.pdfs import paged_pdf

PDF_PAGES = [
    ["The annual farm report covers weather, prices and labour on the estate.",
     "Prices for seed and fertiliser rose again, and the cooperative bought in bulk."],
    ["Labour was short during the spring planting, and students helped on weekends.",
     "The new tractor arrived in April and was shared between three farms."],
    ["The barley harvest in Kettleby doubled after the new irrigation canal opened.",
     "The canal was dug by the villagers of Kettleby over two winters."],
]  # fmt: skip


def make(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in SEEDS.iterdir():
        shutil.copy(path, folder / path.name)
    (folder / "report.pdf").write_bytes(paged_pdf(PDF_PAGES, title="Farm report"))
    (folder / "harvest.docx").write_bytes(docx_file())
    (folder / "notes").mkdir(exist_ok=True)
    (folder / "notes/mill.md").write_text(
        "---\ntitle: Mill notes\ndate: 2019-04-02\n---\nThe mill in Kettleby ground flour for the whole valley.\n"
    )
    return folder

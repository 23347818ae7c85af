"""Sphinx extension: in a fast-mode build, each chapter opens with a one-line "reduced run" note.

``scripts/build_book.py --fast`` (``make book FAST=1``, and the tests) sets the config value
``scorefusion_fast_build``; the full build (``make book``) leaves it false and adds nothing. The
note goes right under the title of every page in ``notebooks/``, so the notebooks need no edit.
"""

from docutils import nodes

NOTE_CLASS = "reduced-run"


def _note() -> nodes.admonition:
    text = nodes.paragraph()
    text += nodes.Text("This page shows a reduced run (")
    text += nodes.literal(text="SCOREFUSION_FAST=1")
    text += nodes.Text("): its numbers, tables and figures come from small, quick runs; ")
    text += nodes.literal(text="make book")
    text += nodes.Text(" builds the full-size runs.")
    return nodes.admonition("", nodes.title(text="Reduced run"), text,
                            classes=["attention", NOTE_CLASS])


def _add_note(app, doctree):
    if not app.config.scorefusion_fast_build or not app.env.docname.startswith("notebooks/"):
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        return
    title = next((i for i, child in enumerate(section.children) if isinstance(child, nodes.title)), -1)
    section.insert(title + 1, _note())


def setup(app):
    app.add_config_value("scorefusion_fast_build", False, "env")
    app.connect("doctree-read", _add_note)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

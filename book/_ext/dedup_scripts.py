"""Sphinx extension: drop repeated <script> entries from each page.

With Jupyter Book 1.0.4 the inline script of sphinx-thebe 0.3.1 (``const THEBE_JS_URL = ...``)
is added twice to every page, and the second copy is a JavaScript error ("Identifier
'THEBE_JS_URL' has already been declared") that the browser test reports. Keeping only the
first of identical entries (same file, same attributes, same inline body) removes it.
"""


def _key(script):
    filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
    attributes = getattr(script, "attributes", {})
    return str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _dedup_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedup_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

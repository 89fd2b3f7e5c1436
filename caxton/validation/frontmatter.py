"""YAML documents: a markdown agent's frontmatter (its body becomes ``documentation``) and ``caxton.yaml``.

Builds ``caxton.validation.documents.Document`` values with the YAML parser of
``caxton.validation.yamldoc``, imported only when a YAML text is actually
parsed (a run answered from the validation cache never loads PyYAML). Called
by ``caxton.validation.pipeline``. Pure: text in, ``Document`` out.
"""

from __future__ import annotations

from caxton.validation.documents import Document, Pos, diagnostic


def parse_markdown(file: str, text: str) -> Document:
    """A ``.md`` agent: YAML frontmatter between ``---`` lines; the body becomes ``documentation``."""
    doc = Document(file=file, start=Pos(1, 1), text=text)
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        doc.diagnostics.append(diagnostic(
            "CX112", file, "no YAML frontmatter: the first line must be '---'", Pos(1, 1),
            hint="start the file with '---', the agent's fields, then another '---' line"))
        return doc
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        doc.diagnostics.append(diagnostic(
            "CX113", file, "the frontmatter opened on line 1 is never closed", Pos(len(lines), 1),
            hint="add a line with '---' after the last field"))
        return doc
    from caxton.validation.yamldoc import parse_yaml_into  # PyYAML loads only when a YAML text is parsed

    parse_yaml_into(doc, "".join(lines[1:end]), line_offset=1)
    body = "".join(lines[end + 1:]).strip()
    if doc.data is not None and body:
        doc.data["documentation"] = body
    return doc


def parse_yaml_file(file: str, text: str) -> Document:
    """A plain YAML document (``caxton.yaml``)."""
    from caxton.validation.yamldoc import parse_yaml_into  # PyYAML loads only when a YAML text is parsed

    doc = Document(file=file, text=text)
    parse_yaml_into(doc, text, line_offset=0)
    return doc

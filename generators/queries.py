"""A user's query as a model writes it: the constraint, and the framing taken off.

Exploration imagines queries and augment paraphrases them; both ask a model for one message a
user would type, and both get it the same way:

- *Plain text under a regex, not a JSON object.* A small model asked for `{"query": "..."}`
  continues in code mode (tool names, file names), while the same model asked for the user's
  message writes a sentence. The line holds no control characters and starts with a letter or
  digit, not with a quote, bracket, list dash or markup (small models otherwise copy a line of
  a list they were shown, quotes and labels included), and holds no brackets, which users do
  not type but templates do (`the capital of [country]`).
- *The framing taken off.* Models often introduce the message (`A user could ask: "What ..."`)
  or echo a label from a list they were shown (`... (solved: yes)`); neither is part of what a
  user would type, so both are removed.
"""

from __future__ import annotations

import re

from imaginarium.models.backend import Constraint

MIN_QUERY_CHARS = 8

_FRAMING = re.compile(
    r"^(?:(?:an?|the|one|some) (?:user|person|customer)\s+(?:\w+\s+){0,2}?(?:asks?|says?|writes?|wants? to know)"
    r"|(?:here is|here.s) (?:a|an|one|my|the) (?:short |new |possible |rewritten |sample |example )?(?:question|query|request|version)"
    r"|question|query|request|rewritten(?: request)?|rewrite(?: this| the)? (?:request|question) as)"
    r"[^:\"\n]{0,40}(?::\s*[\"\u201c]?|,\s*[\"\u201c])(?P<query>.+?)[\"\u201d]?$",
    re.IGNORECASE)


# A label copied from a list the model was shown: "What day is it? (solved: yes)"; what follows it
# is the model going on from the list, not the query.
_ECHOED_LABEL = re.compile(r"\s*\((?:solved|solve|solution|answer|no answer|in progress)\b[^)]*(?:\)|$).*",
                           re.IGNORECASE | re.DOTALL)


def query_constraint(max_chars: int) -> Constraint:
    """One line of plain text, `MIN_QUERY_CHARS` to `max_chars` characters (see the module docstring)."""
    first = r"[^\W_]"  # a letter or a digit
    rest = r"[^\x00-\x1f\[\]{}<>]"  # no template placeholders such as [city] or {name}
    return Constraint.regex(rf"{first}{rest}{{{MIN_QUERY_CHARS - 1},{max_chars - 1}}}")


def unframed_query(text: str) -> str:
    """The query itself when the model framed it (`A user could ask: "What ..."` -> `What ...`).

    Text without such a framing is returned stripped, as it is.
    """
    cut = _ECHOED_LABEL.sub("", text.strip())
    text = cut if len(cut) >= MIN_QUERY_CHARS else text.strip()
    match = _FRAMING.match(text)
    query = match.group("query").strip() if match else ""
    if len(query) >= MIN_QUERY_CHARS and re.match(r"[^\W_]", query):
        return query
    return text

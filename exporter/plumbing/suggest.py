"""The "did you mean" of every mistyped name, wherever it is typed: the YAML file, `--receiver`,
a choice of values. One implementation, so the command line and the file suggest alike."""

from __future__ import annotations

from collections.abc import Iterable

CUTOFF = 0.6  # difflib's ratio: below it, two words are not taken for one another


def _closest(word: str, known: Iterable[str]) -> str | None:
    """The known name `word` most likely stands for (as typed, or in lower case), or None."""
    import difflib  # noqa: PLC0415 (only for mistakes: keeps the daemon small)

    choices = list(known)
    for candidate in dict.fromkeys((word, word.lower())):
        found = difflib.get_close_matches(candidate, choices, n=1, cutoff=CUTOFF)
        if found:
            return found[0]
    return None


def did_you_mean(word: str, known: Iterable[str], *, or_list: bool = True) -> str:
    """The end of a message about an unknown name: the closest known one as a question, else
    the list of known ones (or nothing, without `or_list`: the message lists them already)."""
    choices = list(known)
    found = _closest(word, choices)
    if found:
        return f"; did you mean '{found}'?"
    return f"; known: {', '.join(choices)}" if or_list else ""

"""Row ids in addresses: in a path (``/admin/topics/12``) or a query (``?before=12``), and
in CLI arguments (``alertsvc feeds poll 12``).

Our id columns are PostgreSQL ``integer``: a number past 2**31 - 1 in an address reached
the database and failed there (500) instead of naming no row. The ``int`` converter of every
route refuses it (404, as for any other id that names nothing), ``query_id`` reads a
query parameter the same way (400), and a command's ``ROW_ID`` argument says it is out of
range (exit 2).
"""

from __future__ import annotations

from typing import Any

import click
from flask import abort, request
from werkzeug.routing import IntegerConverter, Map

ID_MAX = 2**31 - 1  # the largest value of a PostgreSQL integer column

ROW_ID = click.IntRange(1, ID_MAX)
"""The click type of an id argument or option: a number out of range is a usage error, not
an OverflowError from the database."""


def digits_at_most(limit: int) -> str:
    """A regular expression for the decimal numbers from 0 to ``limit`` (leading zeros too).

    Shorter numbers, then for each digit of ``limit`` the numbers that agree with it before
    that digit and are smaller at it, then ``limit`` itself.
    """
    text = str(limit)
    options = [rf"\d{{1,{len(text) - 1}}}"] if len(text) > 1 else []
    for place, digit in enumerate(text):
        lowest = 1 if place == 0 and len(text) > 1 else 0
        if int(digit) - 1 >= lowest:
            rest = len(text) - place - 1
            options.append(rf"{text[:place]}[{lowest}-{int(digit) - 1}]\d{{{rest}}}")
    options.append(text)
    return "0*(?:" + "|".join(options) + ")"


class IdConverter(IntegerConverter):
    """Flask's ``int`` converter, with no number past ``ID_MAX``: such a path matches no route.

    The bound is in the pattern, not only in ``to_python``: Werkzeug matches the path first
    and converts after, and a refused conversion on a POST route whose path also has a GET
    route answered 405 instead of 404. It replaces ``int`` in the app's URL map, so every
    ``<int:…>`` rule gets it.
    """

    regex = digits_at_most(ID_MAX)

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", ID_MAX)
        super().__init__(map, *args, **kwargs)


def query_id(name: str) -> int | None:
    """The id in query parameter ``name``; None when it is absent or empty.

    Anything else than a whole number from 1 to ``ID_MAX`` is refused with 400: an address
    nobody could have been given by our own pages.
    """
    raw = request.args.get(name, "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= ID_MAX:
        abort(400)
    return int(raw)

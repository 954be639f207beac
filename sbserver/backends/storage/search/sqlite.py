"""Full-text search in SQLite: an FTS5 table, and the vocabulary that fuzzy matching draws on."""

from __future__ import annotations

import sqlite3

from sbserver.backends.storage.search.base import SearchStore
from sbserver.backends.storage.sqlite_base import SQLiteBase
from sbserver.backends.storage.text import MAX_CANDIDATES, TOP, keyword_words, neighbours, words
from sbserver.types import Base


def fts_query(groups: list[list[str]]) -> str:
    """An FTS5 query: every group must match; inside a group the first word as a prefix, or any
    fuzzy candidate exactly. Terms are quoted word characters only, so no FTS syntax gets through."""
    parts = []
    for group in groups:
        head, *rest = group
        alternatives = [f'"{head}"*'] + [f'"{t}"' for t in rest]
        parts.append("(" + " OR ".join(alternatives) + ")")
    return " AND ".join(parts)


class SQLiteSearch(SQLiteBase, SearchStore):
    """The full-text search contract on SQLite (FTS5); needs the plumbing of ``SQLiteBase``."""

    # full-text search
    async def index_text(self, base: Base, col: str, doc_id: str, text: str) -> None:
        terms = [(base.name, col, t) for t in set(words(text))]

        def tx(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM fts WHERE base = ? AND col = ? AND doc_id = ?", (base.name, col, doc_id))
            c.execute("INSERT INTO fts (base, col, doc_id, body) VALUES (?, ?, ?, ?)", (base.name, col, doc_id, text))
            c.executemany("INSERT OR IGNORE INTO fts_terms (base, col, term) VALUES (?, ?, ?)", terms)

        await self._write(tx)

    async def search_text(self, base: Base, col: str, keywords: list[str], limit: int) -> list[str]:
        groups = []
        for word in keyword_words(keywords):
            exact, patterns = neighbours(word)
            found = []
            if exact:
                # GLOB on words (letters and digits, nothing GLOB reads as special): each pattern
                # with a fixed start is a range of the (base, col, term) key.
                # The range on the pattern's start keeps that true with the values bound late.
                one = "SELECT term FROM fts_terms WHERE base = ?1 AND col = ?2 AND "
                selects = [one + f"term IN ({','.join('?' * len(exact))})"]
                selects += [one + "term >= ? AND term < ? AND term GLOB ?" for _ in patterns]
                sql = f"{' UNION '.join(selects)} EXCEPT SELECT ? ORDER BY 1 LIMIT {MAX_CANDIDATES}"
                params: list[str] = [base.name, col, *exact]
                for a, b in patterns:
                    params += [a, a + TOP, f"{a}?{b}"]
                params.append(word)
                found = [r[0] for r in await self._all_off(sql, params)]
            groups.append([word, *found])
        if not groups:
            return []
        rows = await self._all_off(
            "SELECT doc_id FROM fts WHERE fts MATCH ? AND base = ? AND col = ? ORDER BY bm25(fts) LIMIT ?",
            (f"body : ({fts_query(groups)})", base.name, col, limit),
        )
        return [r[0] for r in rows]

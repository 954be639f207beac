"""Full-text search in SQLite: an FTS5 table, and the vocabulary that fuzzy matching draws on."""

from __future__ import annotations

import sqlite3

from sbserver.backends.storage.search.base import SearchStore
from sbserver.backends.storage.sqlite_base import SQLiteBase
from sbserver.backends.storage.text import candidates, keyword_words, words
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
            vocab = [
                r[0]
                for r in self._all(
                    "SELECT term FROM fts_terms WHERE base = ? AND col = ? AND length(term) BETWEEN ? AND ?",
                    (base.name, col, len(word) - 1, len(word) + 1),
                )
            ]
            groups.append([word, *candidates(word, vocab)])
        if not groups:
            return []
        rows = self._all(
            "SELECT doc_id FROM fts WHERE fts MATCH ? AND base = ? AND col = ? ORDER BY bm25(fts) LIMIT ?",
            (f"body : ({fts_query(groups)})", base.name, col, limit),
        )
        return [r[0] for r in rows]

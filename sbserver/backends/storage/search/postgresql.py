"""Full-text search in PostgreSQL: a generated tsvector with a GIN index, and the vocabulary that
fuzzy matching draws on."""

from __future__ import annotations

from sbserver.backends.storage.postgresql_base import PostgresBase, _limit, _schema
from sbserver.backends.storage.search.base import SearchStore
from sbserver.backends.storage.text import MAX_CANDIDATES, TOP, keyword_words, neighbours, words
from sbserver.types import Base


def ts_query(groups: list[list[str]]) -> str:
    """A tsquery: every group must match; inside a group the first word as a prefix, or any fuzzy
    candidate exactly. Words are letters and digits only, so no tsquery syntax can get through."""
    return " & ".join("(" + " | ".join([f"{g[0]}:*", *g[1:]]) + ")" for g in groups)


class PostgresSearch(PostgresBase, SearchStore):
    """The full-text search contract on PostgreSQL (tsvector); needs the plumbing of ``PostgresBase``."""

    # full-text search
    async def index_text(self, base: Base, col: str, doc_id: str, text: str) -> None:
        text = text.replace("\x00", " ")  # PostgreSQL text cannot hold NUL; it separates words anyway
        schema = _schema(base.name)
        async with self._conn(transaction=True) as c:
            await c.execute(
                f"INSERT INTO {schema}.fts (col, doc_id, body) VALUES ($1, $2, $3) "
                "ON CONFLICT (col, doc_id) DO UPDATE SET body = EXCLUDED.body",
                col,
                doc_id,
                text,
            )
            await c.execute(
                f"INSERT INTO {schema}.fts_terms (col, term) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                col,
                sorted(set(words(text))),
            )

    async def search_text(self, base: Base, col: str, keywords: list[str], limit: int) -> list[str]:
        schema = _schema(base.name)
        groups = []
        for word in keyword_words(keywords):
            exact, patterns = neighbours(word)
            found = []
            if exact:
                # LIKE on words (letters and digits, nothing LIKE reads as special): each pattern
                # with a fixed start is a range of the (col, term) key ("C" collation).
                # The range on the pattern's start keeps that true under a generic plan too.
                one = f"SELECT term FROM {schema}.fts_terms WHERE col = $1 AND "
                selects = [one + "term = ANY($2::text[])"]
                params: list[str | list[str]] = [col, exact]
                for a, b in patterns:
                    n = len(params)
                    selects.append(one + f"term >= ${n + 1} AND term < ${n + 2} AND term LIKE ${n + 3}")
                    params += [a, a + TOP, f"{a}_{b}"]
                sql = f"SELECT term FROM ({' UNION '.join(selects)}) AS t WHERE term <> ${len(params) + 1}"
                rows = await self._fetch(f"{sql} ORDER BY 1 LIMIT {MAX_CANDIDATES}", *params, word)
                found = [r[0] for r in rows]
            groups.append([word, *found])
        if not groups:
            return []
        rows = await self._fetch(
            f"SELECT doc_id FROM {schema}.fts, to_tsquery('simple', $2) AS q "
            "WHERE col = $1 AND tsv @@ q ORDER BY ts_rank(tsv, q) DESC, doc_id LIMIT $3",
            col,
            ts_query(groups),
            _limit(limit),
        )
        return [r[0] for r in rows]

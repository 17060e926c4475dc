"""SQL text: the one way an identifier or a string reaches a statement that takes no parameters
(DDL, views, COPY, a query handed to DuckDB as text). Values go as parameters everywhere else."""


def quote(name: str) -> str:
    """A SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"

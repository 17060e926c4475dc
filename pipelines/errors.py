"""Errors that carry their context (file, entry, row, column, value, rule) and are shown as-is."""


class MegawattError(Exception):
    """Base of the pipeline's own errors."""


class DeclarationError(MegawattError):
    """A declaration or contract under assets/ or data_contracts/ is wrong."""


class RuleError(MegawattError):
    """A rule could not be evaluated (its SQL failed on the data): an error of the run, never a
    rule that failed."""


class ContractViolation(MegawattError):
    """Data broke a blocking rule of its table's contract; nothing was written."""

    def __init__(self, message: str, validation=None, contract=None):
        super().__init__(message)
        self.validation = validation  # every rule's result, for asset checks
        self.contract = contract  # the contract broken

    def __reduce__(self):  # whole across processes (a step's result, under multiprocess)
        return (ContractViolation, (str(self), self.validation, self.contract))


# A value quoted in a message is cut to this many characters (then an ellipsis and its length):
# a 100 KB cell must not become a 100 KB message or alert line.
SHOWN_CHARS = 80
# A list of names (a header's columns) quoted in a message shows at most this many.
SHOWN_ITEMS = 10


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`value` as it is quoted in a message: repr() of at most `limit` characters of it, then
    `… (N characters)` when it was longer."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value):,} characters)"
    return repr(value)


def shown_list(values: list) -> str:
    """A list quoted in a message: each item cut by shown(), at most SHOWN_ITEMS of them."""
    items = [shown(v) for v in values[:SHOWN_ITEMS]]
    if len(values) > SHOWN_ITEMS:
        items.append(f"… {len(values) - SHOWN_ITEMS} more")
    return "[" + ", ".join(items) + "]"


def cut(text: str, limit: int = 4 * SHOWN_CHARS) -> str:
    """Free text (another library's error) cut to `limit` characters, and to its first line."""
    lines = text.strip().splitlines() or [""]
    first = lines[0]
    if len(first) > limit:
        return f"{first[:limit]}… ({len(first):,} characters)"
    return first + (" …" if len(lines) > 1 else "")

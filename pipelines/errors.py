"""Errors that carry their context (file, entry, row, column, value, rule) and are shown as-is."""


class MegawattError(Exception):
    """Base of the pipeline's own errors."""


class DeclarationError(MegawattError):
    """A declaration or contract under assets/ or data_contracts/ is wrong."""


class ContractViolation(MegawattError):
    """Data broke a blocking rule of its table's contract; nothing was written."""

    def __init__(self, message: str, validation=None, contract=None):
        super().__init__(message)
        self.validation = validation  # every rule's result, for asset checks
        self.contract = contract  # the contract broken

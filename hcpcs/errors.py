"""Errors raised for CMS release files that cannot be loaded."""


class HcpcsError(Exception):
    """Base class for errors that this project raises on purpose."""


class ReleaseFileError(HcpcsError):
    """A release file that cannot be loaded at all, so nothing of its release is written.

    The message names the file, the line or row and the value where one applies, and gives
    the next step.
    """

    def __init__(
        self,
        source_file: str,
        problem: str,
        action: str,
        *,
        line_number: int | None = None,
        field: str | None = None,
        value: str | None = None,
    ) -> None:
        self.source_file = source_file
        self.problem = problem
        self.action = action
        self.line_number = line_number
        self.field = field
        self.value = value
        unit = "line" if source_file.lower().endswith(".txt") else "row"
        location = source_file if line_number is None else f"{source_file}, {unit} {line_number}"
        detail = ""
        if field is not None:
            detail += f" Field: {field}."
        if value is not None:
            detail += f" Value: {value!r}."
        super().__init__(f"{location}: {problem}.{detail} {action}")


class SettingError(HcpcsError):
    """An environment variable of the pipeline set to a value it cannot use."""


class RawFolderError(HcpcsError):
    """The raw folder is missing, empty, or holds something that is not a CMS release."""


class ReleaseCountDropError(HcpcsError):
    """A release lists far fewer codes than the release before it, which points to a wrong or cut file."""

    def __init__(self, release_id: str, message: str) -> None:
        self.release_id = release_id
        super().__init__(message)

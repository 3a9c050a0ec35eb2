"""What is wrong with a persona file: each problem with file, line and field, and the error that carries them."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}"


class PersonaFileError(InvalidInputError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.field, "\n".join(str(p) for p in problems))

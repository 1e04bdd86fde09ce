"""Apply a flow's declared variables to a validated trigger request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mapper.errors import MappingSpecError
from mapper.jsonpath import format_path

VARIABLE_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
}


def _matches(value: Any, type_name: str) -> bool:
    if type_name == "number" and isinstance(value, bool):
        return False
    return isinstance(value, VARIABLE_TYPES[type_name])


class FlowVariables:
    """The flow's variable declarations: defaults, `required`, types.

    Defaults fill what the mapping left out, a mapped value overrides its
    default, and mapped variables the flow does not declare pass through
    unchanged (a flow may read them in templates before they are declared).
    """

    def __init__(self, declarations: Sequence[dict[str, Any]]):
        self.declarations: list[dict[str, Any]] = []
        seen: set[str] = set()
        if not isinstance(declarations, list):
            raise MappingSpecError("variables must be a list of declarations", path="$.variables")
        for index, declaration in enumerate(declarations):
            where = f"$.variables[{index}]"
            if not isinstance(declaration, dict):
                raise MappingSpecError("a variable declaration must be an object", path=where)
            name = declaration.get("name")
            type_name = declaration.get("type", "string")
            if not isinstance(name, str) or not name:
                raise MappingSpecError("a variable needs a non-empty name", path=where)
            if name in seen:
                raise MappingSpecError(f"variable {name!r} is declared twice", path=where)
            if not isinstance(type_name, str) or type_name not in VARIABLE_TYPES:
                raise MappingSpecError(
                    f"variable {name!r} has unknown type {type_name!r}; use one of {', '.join(VARIABLE_TYPES)}",
                    path=where,
                )
            if (
                "default" in declaration
                and declaration["default"] is not None
                and not _matches(declaration["default"], type_name)
            ):
                raise MappingSpecError(f"the default of variable {name!r} is not {_a(type_name)}", path=where)
            seen.add(name)
            self.declarations.append(declaration)

    def apply(self, output: dict[str, Any]) -> list[dict[str, str]]:
        """Fill defaults into `output["variables"]` in place; return the errors."""
        mapped: dict[str, Any] = output.get("variables") or {}
        merged = dict(mapped)
        errors: list[dict[str, str]] = []
        for declaration in self.declarations:
            name = declaration["name"]
            type_name = declaration.get("type", "string")
            path = format_path(["variables", name])
            if name in mapped and mapped[name] is not None:
                if not _matches(mapped[name], type_name):
                    errors.append({"path": path, "message": f"variable {name!r} must be {_a(type_name)}"})
            elif declaration.get("default") is not None:
                merged[name] = declaration["default"]
            elif declaration.get("required"):
                errors.append({"path": path, "message": f"required variable {name!r} is missing"})
        if merged or "variables" in output:
            output["variables"] = merged
        return errors


def _a(type_name: str) -> str:
    """`a string`, `an object`: messages read as English."""
    return f"{'an' if type_name[0] in 'aeiou' else 'a'} {type_name}"

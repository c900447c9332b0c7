"""Limits on what one GraphQL document may ask: size, depth (Strawberry's QueryDepthLimiter) and cost.

Cost: every field costs 1; a field with a page-size argument (`first`, `limit`) multiplies the cost of
what it selects by that size (the page size cap when the argument is a variable or absent). A document
above `max_complexity` is refused before anything is called, with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
)
from strawberry.extensions import SchemaExtension

PAGE_ARGUMENTS = ("first", "limit")


def selection_cost(selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode],
                   default_page: int, seen: frozenset[str] = frozenset()) -> int:
    """The cost of a selection set (fragments expanded; a fragment cycle costs nothing more)."""
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            page = _page_size(selection, default_page)
            inner = selection_cost(selection.selection_set, fragments, default_page, seen)
            total += 1 + (page or 1) * inner
        elif isinstance(selection, InlineFragmentNode):
            total += selection_cost(selection.selection_set, fragments, default_page, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                total += selection_cost(fragment.selection_set, fragments, default_page, seen | {name})
    return total


def _page_size(field: FieldNode, default_page: int) -> int | None:
    for argument in field.arguments or ():
        if argument.name.value in PAGE_ARGUMENTS:
            value = argument.value
            return int(value.value) if isinstance(value, IntValueNode) else default_page
    return None


def complexity_rule(max_complexity: int, default_page: int) -> type[ASTValidationRule]:
    """A validation rule refusing operations that cost more than `max_complexity`."""

    class ComplexityLimit(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._fragments = {definition.name.value: definition for definition in context.document.definitions
                               if isinstance(definition, FragmentDefinitionNode)}

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            cost = selection_cost(node.selection_set, self._fragments, default_page)
            if cost > max_complexity:
                self.report_error(GraphQLError(
                    f"query is too complex: cost {cost} exceeds the limit of {max_complexity}", node,
                    extensions={"code": "QUERY_TOO_COMPLEX", "cost": cost, "limit": max_complexity}))

    return ComplexityLimit


def query_size_limit(max_bytes: int) -> type[SchemaExtension]:
    """A schema extension refusing documents longer than `max_bytes` before they are parsed."""

    class QuerySizeLimit(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            query = self.execution_context.query or ""
            if len(query.encode()) > max_bytes:
                raise GraphQLError(f"query is too large: more than {max_bytes} bytes",
                                   extensions={"code": "QUERY_TOO_LARGE", "limit": max_bytes})
            yield

    return QuerySizeLimit


Rule = Callable[..., Any]
__all__ = ["complexity_rule", "query_size_limit", "selection_cost"]

"""Fixtures for the contract tests: the compiled descriptor set, the RealWorld spec and the
OpenAPI document generated from the descriptor set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from google.protobuf.message import Message

from conduit_gateway.descriptors import Contract
from conduit_gateway.openapi import build_document

from .support import (
    DESCRIPTOR_SET,
    RealWorldOperation,
    iter_realworld_operations,
    realworld_file,
    sample_message,
)


@pytest.fixture(scope="session")
def contract() -> Contract:
    return Contract.load(DESCRIPTOR_SET)


@pytest.fixture(scope="session")
def realworld_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(realworld_file("openapi.yml").read_text(encoding="utf-8"))
    return spec


@pytest.fixture(scope="session")
def realworld_operations(realworld_spec: dict[str, Any]) -> list[RealWorldOperation]:
    return list(iter_realworld_operations(realworld_spec))


@pytest.fixture(scope="session")
def generated_document(contract: Contract) -> dict[str, Any]:
    return build_document(contract)


@pytest.fixture(scope="session")
def message_sampler(contract: Contract) -> Callable[..., Message]:
    """`message_sampler("conduit.articles.v1.GetArticleResponse", zeros=False)`."""

    def sample(full_name: str, *, zeros: bool) -> Message:
        return sample_message(contract.message_class(full_name), zeros=zeros)

    return sample

"""The token table: entries validated as a model, every malformed entry named with its field."""

from __future__ import annotations

from typing import Any

import pytest

from graph.server.tokens import ROLES, AuthConfigError, TokenEntry, digest, parse_table

TOKEN = "t" * 20
OTHER = "o" * 20


def entry(**fields: Any) -> dict[str, Any]:
    return {"identity": "ann", "roles": ["reviewer"], "token": TOKEN} | fields


def test_a_list_and_a_tokens_object_are_the_same_table() -> None:
    entries = [entry(), {"identity": "bob", "roles": ["requester"], "token_sha256": digest(OTHER)}]
    table = parse_table(entries, "test")
    assert parse_table({"tokens": entries, "comment": "rotated monthly"}, "test") == table
    assert set(table) == {digest(TOKEN), digest(OTHER)}
    ann = table[digest(TOKEN)]
    assert (ann.identity, ann.display_name, ann.roles) == ("ann", "ann", ("reviewer",))


def test_an_entry_is_normalised() -> None:
    (ann,) = parse_table(
        [
            entry(
                identity="  ann  ",
                display_name="Ann Reviewer",
                roles=["admin", "reviewer", "admin"],
                token=None,
                token_sha256=digest(TOKEN).upper(),
            )
        ],
        "test",
    ).items()
    assert ann[0] == digest(TOKEN)  # the table is keyed by the lower-case digest
    assert (ann[1].identity, ann[1].display_name, ann[1].roles) == (
        "ann",
        "Ann Reviewer",
        ("admin", "reviewer"),
    )
    assert parse_table([entry(display_name="")], "t")[digest(TOKEN)].display_name == "ann"


@pytest.mark.parametrize("document", [None, "tokens", 3, {"tokenz": []}, {"tokens": "x"}])
def test_a_document_without_a_token_list_is_refused(document: Any) -> None:
    with pytest.raises(AuthConfigError) as err:
        parse_table(document, "auth.yaml")
    assert str(err.value) == "auth.yaml: expected a list of tokens or {'tokens': [...]}"


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("not an entry", "tokens[1] must be an object"),
        (entry(identity=" "), "tokens[1].identity must be a non-empty string"),
        (entry(identity=None), "tokens[1].identity must be a non-empty string"),
        (
            entry(roles=[]),
            f"tokens[1].roles must be a non-empty list drawn from {', '.join(ROLES)}",
        ),
        (entry(roles=["reviewer", "root"]), "tokens[1].roles must be a non-empty list"),
        (entry(roles="reviewer"), "tokens[1].roles must be a non-empty list"),
        (entry(token="short"), "tokens[1].token must be a string of at least 16 characters"),
        (entry(token=12345678901234567890), "tokens[1].token must be a string"),
        (entry(token=None, token_sha256="ab" * 31), "tokens[1].token_sha256 must be 64 hex digits"),
        (entry(token=None, token_sha256="zz" * 32), "tokens[1].token_sha256 must be 64 hex digits"),
        (entry(token=None), "tokens[1] needs exactly one of 'token' or 'token_sha256'"),
        (
            entry(token_sha256=digest(OTHER)),
            "tokens[1] needs exactly one of 'token' or 'token_sha256'",
        ),
        (entry(display_name=7), "tokens[1].display_name must be a string"),
        (entry(role="admin", secret=1), "tokens[1] has unknown keys ['role', 'secret']"),
        (entry(), "tokens[1]: the same token is listed twice"),
        (
            entry(token=None, token_sha256=digest(TOKEN)),
            "tokens[1]: the same token is listed twice",
        ),
    ],
)
def test_a_malformed_entry_is_named_with_its_field(bad: Any, problem: str) -> None:
    with pytest.raises(AuthConfigError) as err:
        parse_table([entry(), bad], "auth.yaml")
    assert f"auth.yaml: {problem}" in str(err.value)
    assert "tokens[0]" not in str(err.value)


def test_every_malformed_entry_is_named_once() -> None:
    with pytest.raises(AuthConfigError) as err:
        parse_table(
            [entry(roles=["root", "boss"]), entry(token="short", identity=""), entry()], "test"
        )
    problems = str(err.value).split("; ")
    assert problems == [
        f"test: tokens[0].roles must be a non-empty list drawn from {', '.join(ROLES)}",
        "test: tokens[1].identity must be a non-empty string",
        "test: tokens[1].token must be a string of at least 16 characters",
    ]


def test_an_entry_is_keyed_by_its_digest() -> None:
    assert TokenEntry.model_validate(entry()).key == digest(TOKEN)
    hashed = TokenEntry.model_validate(entry(token=None, token_sha256=digest(TOKEN).upper()))
    assert hashed.key == digest(TOKEN)

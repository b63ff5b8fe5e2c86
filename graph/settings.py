"""Operator settings: read once from the environment into one typed, validated object.

Every variable is documented in ``.env.example``. A bad value (a non-number, a NaN, a
negative budget, a URI that is not PostgreSQL) is refused at start-up with an error naming
the variable; nothing falls back silently. Secrets (a token, an inline token table) are
held as :class:`~pydantic.SecretStr` and never quoted in an error.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from checkpoints.factory import redact
from graph.errors import ConfigError
from graph.identity import clean_token
from guards.policy.engines import EngineName
from guards.policy.regorus import REGORUS_EXTRA

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
URIS = frozenset({"database_uri", "server_database_uri", "PLANBOUND_DATABASE_URI", "DATABASE_URI"})
SERVER_MARKERS = (":memory:",)
"""``DATABASE_URI`` values the LangGraph dev server sets for its in-memory runtime."""
SECRETS = frozenset(
    {
        "auth_tokens",
        "PLANBOUND_AUTH_TOKENS",
        "token",
        "PLANBOUND_TOKEN",
        "openai_api_key",
        "OPENAI_API_KEY",
        "langsmith_api_key",
        "LANGSMITH_API_KEY",
    }
)
"""Settings whose value is never shown, not even in an error (by field or variable name)."""


class Settings(BaseSettings):
    """planbound's operator settings (environment only)."""

    # Variables are read by their documented names only: a field's own name (``HOME``,
    # ``TOKEN``) is never taken from the environment.
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    home: Path = Field(
        default=Path(".planbound"),
        validation_alias="PLANBOUND_HOME",
        description="Data directory: SQLite domain database, ledger and checkpoints.",
    )
    database_uri: str | None = Field(
        default=None,
        validation_alias="PLANBOUND_DATABASE_URI",
        description="PostgreSQL for checkpoints, domain, ledger and approvals.",
    )
    server_database_uri: str | None = Field(
        default=None,
        validation_alias="DATABASE_URI",
        description="The LangGraph server's database; used when it is a PostgreSQL URI.",
    )
    domain: str = Field(
        default="tools.retail",
        validation_alias="PLANBOUND_DOMAIN",
        description="Import path of the domain plug-in (a module with a ``DOMAIN``).",
    )
    templates: Path | None = Field(
        default=None,
        validation_alias="PLANBOUND_TEMPLATES",
        description="Plan-template YAML file (default: the domain's own).",
    )
    policy_dir: Path | None = Field(
        default=None,
        validation_alias="PLANBOUND_POLICY_DIR",
        description="Directory of .rego files (default: the domain's own).",
    )
    opa_url: str | None = Field(
        default=None, validation_alias="OPA_URL", description="Evaluate the policy on OPA."
    )
    policy_engine: EngineName = Field(
        default="regopy",
        validation_alias="PLANBOUND_POLICY_ENGINE",
        description="The in-process Rego engine: regopy, or regorus (opt-in, its own extra).",
    )
    max_steps: int = Field(default=20, ge=1, le=1000, validation_alias="PLANBOUND_MAX_STEPS")
    max_replans: int = Field(default=2, ge=0, validation_alias="PLANBOUND_MAX_REPLANS")
    inline_limit: int = Field(default=4096, ge=0, validation_alias="PLANBOUND_INLINE_LIMIT")
    approval_threshold: float = Field(
        default=1000.0, ge=0, validation_alias="PLANBOUND_APPROVAL_THRESHOLD"
    )
    max_write_steps: int = Field(
        default=6, ge=1, le=1000, validation_alias="PLANBOUND_MAX_WRITE_STEPS"
    )
    pg_pool_max: int = Field(default=10, ge=1, validation_alias="PLANBOUND_PG_POOL_MAX")
    review_lease_s: float = Field(
        default=120.0,
        gt=0,
        le=86400,
        validation_alias="PLANBOUND_REVIEW_LEASE_S",
        description="How long a server answer holds its review before another may take it.",
    )

    auth_file: Path | None = Field(
        default=None,
        validation_alias="PLANBOUND_AUTH_FILE",
        description="The token table (YAML or JSON): who may do what, on the server and the CLI.",
    )
    auth_tokens: SecretStr | None = Field(
        default=None,
        validation_alias="PLANBOUND_AUTH_TOKENS",
        description="The token table as inline JSON (ignored when ``auth_file`` is set).",
    )
    token: SecretStr | None = Field(
        default=None,
        validation_alias="PLANBOUND_TOKEN",
        description="The CLI caller's token, looked up in the token table.",
    )

    # -- The LLM planner (off unless PLANBOUND_MODEL is set) -----------------------------------
    openai_base_url: str | None = Field(
        default=None,
        validation_alias="OPENAI_BASE_URL",
        description="An OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, LM Studio).",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="OPENAI_API_KEY",
        description="The endpoint's API key (local servers usually take any value).",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        validation_alias="PLANBOUND_MODEL",
        description="The model the LLM planner asks; unset, no model is ever called.",
    )
    planner: Literal["auto", "template", "llm"] = Field(
        default="auto",
        validation_alias="PLANBOUND_PLANNER",
        description="auto: templates, else the LLM when the risk tier allows; or only one.",
    )
    structured_output: Literal["json_schema", "function_calling"] = Field(
        default="json_schema",
        validation_alias="PLANBOUND_STRUCTURED_OUTPUT",
        description="How the model is held to the plan schema (function calling: fallback).",
    )
    llm_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=600,
        validation_alias="PLANBOUND_LLM_TIMEOUT_S",
        description="Seconds one model request may take.",
    )
    max_tokens: int = Field(
        default=50_000,
        ge=1,
        le=10_000_000,
        validation_alias="PLANBOUND_MAX_TOKENS",
        description="Most model tokens (input + output) one run may use.",
    )
    max_cost: float = Field(
        default=1.0,
        ge=0,
        le=1000,
        validation_alias="PLANBOUND_MAX_COST",
        description="Most model cost (USD, from the price table) one run may use.",
    )
    price_table: Path | None = Field(
        default=None,
        validation_alias="PLANBOUND_PRICE_TABLE",
        description="Price table YAML (default: graph/planners/llm/prices.yaml).",
    )
    human_fallback: bool = Field(
        default=False,
        validation_alias="PLANBOUND_HUMAN_FALLBACK",
        description="When re-plans are used up, ask a person for a plan instead of refusing.",
    )

    @field_validator(
        "openai_base_url",
        "openai_api_key",
        "model",
        "price_table",
        mode="before",
    )
    @classmethod
    def _blank_llm_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("openai_base_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.rstrip("/")

    @field_validator("max_cost", "llm_timeout_s")
    @classmethod
    def _finite_llm(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _llm_complete(self) -> Settings:
        if self.model is not None and not self.llm_configured:
            raise ValueError(
                "PLANBOUND_MODEL is set but neither OPENAI_BASE_URL nor OPENAI_API_KEY is"
            )
        if self.planner == "llm" and self.model is None:
            raise ValueError(
                "PLANBOUND_PLANNER=llm needs a model: set PLANBOUND_MODEL and OPENAI_BASE_URL"
            )
        return self

    @property
    def llm_configured(self) -> bool:
        """Whether a model is configured: ``PLANBOUND_MODEL`` with an endpoint or a key."""
        return self.model is not None and (
            self.openai_base_url is not None or self.openai_api_key is not None
        )

    langsmith_tracing: bool = Field(
        default=False,
        validation_alias="LANGSMITH_TRACING",
        description="Send traces to LangSmith (needs LANGSMITH_API_KEY too).",
    )
    langsmith_api_key: SecretStr | None = Field(
        default=None, validation_alias="LANGSMITH_API_KEY", description="The LangSmith key."
    )
    langsmith_endpoint: str | None = Field(
        default=None, validation_alias="LANGSMITH_ENDPOINT", description="The LangSmith API URL."
    )
    langsmith_project: str = Field(
        default="planbound", validation_alias="LANGSMITH_PROJECT", description="Trace project."
    )
    trace_redact: Literal["off", "mask", "hide"] = Field(
        default="off",
        validation_alias="PLANBOUND_TRACE_REDACT",
        description="Mask personal data in traces (mask) or drop inputs and outputs (hide).",
    )

    @field_validator(
        "langsmith_api_key",
        "langsmith_endpoint",
        "database_uri",
        "opa_url",
        "templates",
        "policy_dir",
        "auth_file",
        "auth_tokens",
        "token",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_uri")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(POSTGRES_SCHEMES):
            raise ValueError("must be a postgresql:// URI")
        return value

    @field_validator("server_database_uri")
    @classmethod
    def _postgres_or_server_marker(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if value in SERVER_MARKERS or value.startswith(POSTGRES_SCHEMES):
            return value
        raise ValueError(
            "must be a postgresql:// URI (or unset; the LangGraph dev server's "
            f"{SERVER_MARKERS[0]!r} is ignored)"
        )

    @field_validator("token")
    @classmethod
    def _one_word(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else SecretStr(clean_token(value.get_secret_value()))

    @field_validator("approval_threshold")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("opa_url")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("policy_engine", mode="before")
    @classmethod
    def _blank_engine_is_default(cls, value: Any) -> Any:
        return "regopy" if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _engine_usable(self) -> Settings:
        if self.policy_engine != "regorus":
            return self
        if self.opa_url is not None:
            raise ValueError(
                "OPA_URL and PLANBOUND_POLICY_ENGINE=regorus are both set: the policy is "
                "evaluated either on OPA or in-process by regorus; unset one"
            )
        if importlib.util.find_spec("regorus") is None:
            raise ValueError(
                f"PLANBOUND_POLICY_ENGINE=regorus but regorus is not installed: {REGORUS_EXTRA}"
            )
        return self

    @property
    def postgres_uri(self) -> str | None:
        """The PostgreSQL URI to use, or ``None`` for the SQLite files under ``home``.

        ``PLANBOUND_DATABASE_URI`` wins; else ``DATABASE_URI`` when it is a PostgreSQL URI
        (``langgraph dev`` sets it to a marker of its own, which is not).
        """
        if self.database_uri is not None:
            return self.database_uri
        server = self.server_database_uri
        return server if server and server.startswith(POSTGRES_SCHEMES) else None

    @property
    def has_token_table(self) -> bool:
        """Whether a token table is configured: callers are then identified by their token."""
        return self.auth_file is not None or self.auth_tokens is not None

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read the environment (``overrides`` win, by field name).

        Args:
            **overrides: Values by field name (``home=...``), used instead of the variable.

        Raises:
            ConfigError: naming each variable that is malformed.
        """
        try:
            return cls(**{_variable(name): value for name, value in overrides.items()})
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                if not err["loc"]:  # a rule across variables: its message names them
                    problems.append(str(err["msg"]).removeprefix("Value error, "))
                    continue
                field = str(err["loc"][0])
                name = _variable(field)
                got = "hidden" if field in SECRETS else repr(err.get("input"))
                if field in URIS and isinstance(err.get("input"), str):
                    got = repr(redact(err["input"]))  # a password never shown
                problems.append(f"{name}: {err['msg']} (got {got})")
            raise ConfigError("bad setting: " + "; ".join(problems)) from None


def _variable(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field

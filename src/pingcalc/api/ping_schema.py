"""What `POST /api/v1/ping` accepts and answers: the pydantic models and the OpenAPI operation.

The route parses its body with `PingRequest`; the answers are the engine's own JSON
(`PingResult.to_dict`, `Reply.to_dict`, `Lost.to_dict`), which these models describe for
clients and for the schema fuzzer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt, StrictStr, field_validator
from pydantic_core import PydanticCustomError

from pingcalc.api.openapi import JSON_BODY_ANSWERS, Answer, Operation, ProblemDocument, problem
from pingcalc.settings import Settings

NDJSON_MEDIA_TYPE = "application/x-ndjson"
_DEFAULTS = Settings.model_fields


class PingRequest(BaseModel):
    """The body of a ping request; unknown fields are refused (no silent options)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    target: StrictStr = Field(
        description="An IPv4 or IPv6 address, or a host name. A name is resolved once by the "
        "server and refused if any address it resolves to is not allowed; the address pinged "
        "is one of those checked.",
        examples=["127.0.0.1", "::1", "localhost"],
    )
    count: StrictInt | None = Field(
        default=None,
        description="Echo requests to send: the server's default "
        f"({_DEFAULTS['ping_default_count'].default}) when absent, at most its maximum "
        f"({_DEFAULTS['ping_max_count'].default} unless the operator lowered it)",
    )
    family: Literal[4, 6] | None = Field(
        default=None,
        description="Resolve a host name to IPv4 (4) or IPv6 (6) addresses only; an address "
        "target must be of this family. Without it, a name's IPv4 address is preferred.",
    )

    @field_validator("family", mode="before")
    @classmethod
    def _integer_family(cls, value: Any) -> Any:
        # A Literal compares by equality, so 4.0 would pass as 4 (and True as 1): no floats
        # or booleans, with the Literal's own message.
        if isinstance(value, bool | float):
            raise PydanticCustomError("literal_error", "Input should be 4 or 6")
        return value


class RttModel(BaseModel):
    min: float
    avg: float
    max: float
    stddev: float


class ReplyModel(BaseModel):
    seq: int
    rtt_ms: float


class PingResponse(BaseModel):
    """The result: the address pinged (and the name asked for), every reply, loss and RTTs."""

    target: str = Field(description="The address pinged")
    name: str | None = Field(
        default=None, description="The host name asked for, in ASCII; absent for an address"
    )
    family: int
    sent: int
    received: int
    loss_percent: float
    rtt_ms: RttModel | None
    replies: list[ReplyModel]
    backend: str


class PingEventLine(BaseModel):
    """One echo as it happens: a reply with its round-trip time, or a timeout."""

    event: Literal["reply", "timeout"]
    seq: int
    rtt_ms: float | None = Field(default=None, description="Absent for a timeout")


class PingStreamLine(RootModel[PingEventLine | PingResponse | ProblemDocument]):
    """One line of a live answer: an event per echo as it happens, then the result (or, if
    the audit record could not be written, a problem with `status` 503)."""


OPERATION = Operation(
    summary="Send ICMP echo requests to a validated address or host name",
    tags=("ping",),
    description="Ping `target` `count` times; the result lists every reply. Loopback and "
    "global addresses only by default; the operator may allow internal ranges. With "
    "`Accept: application/x-ndjson` each reply or timeout is sent as a JSON line as it "
    "happens, then the result as the last line.",
    scope="ping",
    request=PingRequest,
    answers={
        **JSON_BODY_ANSWERS,
        200: Answer(
            "The replies, loss and round-trip statistics",
            PingResponse,
            extra_media=((NDJSON_MEDIA_TYPE, PingStreamLine),),
        ),
        403: problem(
            "The target, or an address of the host name, is not allowed (`address`, "
            "`category`); or the token lacks the `ping` scope"
        ),
        404: problem("The host name does not exist or has no address of the family asked"),
        422: problem(
            "The target, count or family is invalid, or the host name has more addresses "
            "than a name may have (`too-many-addresses`)"
        ),
        502: problem("The resolver failed to answer for the host name"),
        503: problem(
            "Too many pings or name lookups in flight (`Retry-After`), the server cannot "
            "ping, or the audit trail cannot be written"
        ),
        504: problem("The host name's lookup took longer than the server allows"),
    },
)

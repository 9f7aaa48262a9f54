"""The errors pingcalc raises, in one place: each package keeps its own in its errors module
(with the same tree in its docstring), all under `PingcalcError`.

    PingcalcError
     ├── SettingsError                settings.py: bad configuration, one line per setting
     ├── TokenStoreError              auth.py: unreadable or malformed tokens file
     ├── calc.CalcError               calc/errors.py: an expression was rejected (`position`)
     │    ├── CalcSyntaxError         not in the grammar, or not ASCII               (422)
     │    ├── CalcLimitError          a resource bound would be crossed              (422)
     │    └── CalcMathError           division by zero, domain errors, overflow      (422)
     ├── ping.PingError               ping/errors.py: a target refused, or no echo can be sent
     │    ├── TargetSyntaxError       not a canonical address                        (422)
     │    │    └── NameSyntaxError    not a safe host name                           (422)
     │    ├── PlanError               count or family out of bounds                  (422)
     │    ├── TargetDeniedError       an address the policy refuses                  (403)
     │    │    └── NameDeniedError    a name with any refused address                (403)
     │    ├── ResolutionError         the name could not be resolved
     │    │    ├── NameNotFoundError                                                 (404)
     │    │    ├── ResolverTimeoutError                                              (504)
     │    │    ├── ResolverBusyError  too many lookups in flight                     (503)
     │    │    └── ResolverFailedError                                               (502)
     │    └── BackendUnavailableError no socket permission, no ping binary, no IPv6  (503)
     ├── throttle.ThrottleError       throttle/errors.py
     │    ├── RateSyntaxError         a rate that does not parse (settings)
     │    └── CapacityError           a concurrency cap is full                  (429 / 503)
     └── audit.AuditError             audit/errors.py
          ├── AuditKeyError           a missing, unreadable or mismatched key
          └── KeyFileExistsError      keygen would overwrite a key

The HTTP layer (`pingcalc.api`) maps each to a status; domain code never sees HTTP. The
edge's own `api.forwarded.ForwardedError` (a trusted proxy's X-Forwarded-For that names no
address, 400) never leaves the HTTP layer.
"""

from __future__ import annotations


class PingcalcError(Exception):
    """Base of every error pingcalc raises on purpose."""

"""The errors pingcalc raises, in one place.

    PingcalcError
     ├── SettingsError              settings.py: bad configuration, one line per setting
     ├── TokenStoreError            auth.py: unreadable or malformed tokens file
     ├── calc.CalcError             calc/: an expression was rejected (has `position`)
     │    ├── CalcSyntaxError       not in the grammar, or not ASCII
     │    ├── CalcLimitError        a resource bound would be crossed
     │    └── CalcMathError         division by zero, domain errors, overflow, NaN
     └── ping.PingError             ping/: a target was refused, or no echo can be sent
          ├── TargetSyntaxError     not a canonical IP address nor a valid name (422)
          ├── PlanError             a count or family out of bounds             (422)
          ├── TargetDeniedError     an address (or a name's) the policy refuses (403)
          ├── ResolutionError       unknown name 404, lookup timeout 504, busy 503, failed 502
          └── BackendUnavailableError  no socket permission, no ping binary     (503)
          (the full ping tree, with the name errors, is in ping/errors.py)

The HTTP layer (`api/problems.py`) maps each to a status; domain code never sees HTTP.
"""

from __future__ import annotations


class PingcalcError(Exception):
    """Base of every error pingcalc raises on purpose."""

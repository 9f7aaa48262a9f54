"""The errors pingcalc raises, in one place.

    PingcalcError
     ├── SettingsError              settings.py: bad configuration, one line per setting
     ├── TokenStoreError            auth.py: unreadable or malformed tokens file
     ├── calc.CalcError             calc/: an expression was rejected (has `position`)
     │    ├── CalcSyntaxError       not in the grammar, or not ASCII
     │    ├── CalcLimitError        a resource bound would be crossed
     │    └── CalcMathError         division by zero, domain errors, overflow, NaN
     └── ping.PingError             ping/: a target was refused, or no echo can be sent
          ├── TargetSyntaxError     not a canonical IP address                 (422)
          ├── TargetDeniedError     a valid address the policy refuses          (403)
          └── BackendUnavailableError  no socket permission, no ping binary     (503)

The HTTP layer (`api/problems.py`) maps each to a status; domain code never sees HTTP.
"""

from __future__ import annotations


class PingcalcError(Exception):
    """Base of every error pingcalc raises on purpose."""

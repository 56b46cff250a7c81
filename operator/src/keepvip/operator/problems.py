"""Why the spec stage gave a VirtualIP no usable pair: one enum for every stage.

The allocator refuses with it, the status stage writes it as the Allocated (or
InvalidSpec) condition's reason, the Warning Event carries it, and a metric labels by
it: one name per problem from the decision to the API, never converted by value.
"""

from __future__ import annotations

import enum


class Problem(enum.StrEnum):
    """A condition reason and a metric label."""

    INVALID_SPEC = "InvalidSpec"  # the spec does not validate (what slipped past the webhook)
    POOL_EXHAUSTED = "PoolExhausted"  # no free (group, VRID) pair of the family
    PAIR_IN_USE = "PairInUse"  # the pinned pair is another VirtualIP's
    ADDRESS_IN_USE = "AddressInUse"  # an older VirtualIP holds one of the addresses

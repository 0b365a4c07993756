"""The one place that defines every outcome and every reason code.

Docs and tests read these tables; code that decides an outcome names a reason from here, so a
reason that is not documented cannot be emitted.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl


class Outcome(StrEnum):
    """What finally happened to one input row. Every input row gets exactly one."""

    SUCCEEDED = "succeeded"  # Masivo accepted the registration (2xx)
    SKIPPED = "skipped"  # deliberately not sent (unchanged, duplicate, opted out, ...)
    INVALID = "invalid"  # the row cannot be sent as it is; fix the source
    REJECTED = "rejected"  # Masivo answered with a permanent 4xx for this row
    FAILED = "failed"  # transient errors persisted past the retry budget
    ABORTED = "aborted"  # the run stopped (systemic error or signal) before this row was done


OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)

# reason code -> (outcome it belongs to, one-line meaning)
REASONS: dict[str, tuple[Outcome, str]] = {
    # succeeded
    "registered": (Outcome.SUCCEEDED, "Masivo accepted the device registration."),
    # skipped
    "unchanged": (
        Outcome.SKIPPED,
        "Same customer and device_info as last accepted; nothing to send.",
    ),
    "duplicate_token": (
        Outcome.SKIPPED,
        "Another row with the same device token won (later activity, or later row).",
    ),
    "opted_out": (Outcome.SKIPPED, "The source marks the device as unsubscribed or opted out."),
    "stale": (
        Outcome.SKIPPED,
        "Last activity is older than --max-age days (checked for Android, where FCM expires tokens).",
    ),
    "unsupported_platform": (
        Outcome.SKIPPED,
        "Platform Masivo cannot take (Amazon, Huawei, Windows, macOS, email, SMS, ...).",
    ),
    "dry_run": (
        Outcome.SKIPPED,
        "Valid and would be sent, but this run sends nothing (plan, validate or reconcile).",
    ),
    "not_in_shard": (Outcome.SKIPPED, "The token belongs to another shard of this run."),
    # invalid
    "missing_customer_id": (Outcome.INVALID, "customer_id is empty."),
    "invalid_customer_id": (
        Outcome.INVALID,
        "customer_id contains control characters or is longer than 1024 characters.",
    ),
    "missing_device_token": (Outcome.INVALID, "device_token is empty."),
    "missing_platform": (Outcome.INVALID, "platform is empty."),
    "unknown_platform": (
        Outcome.INVALID,
        "platform value is not recognised; map it in a mapping file.",
    ),
    "apns_token_not_fcm": (
        Outcome.INVALID,
        "An APNs device token (64 hex); convert it to an FCM token before migrating.",
    ),
    "expo_token": (Outcome.INVALID, "An Expo push token; Masivo needs an FCM registration token."),
    "webpush_endpoint": (
        Outcome.INVALID,
        "A Web Push endpoint URL; Masivo needs an FCM web token.",
    ),
    "email_or_phone_token": (
        Outcome.INVALID,
        "The token column holds an email address or phone number (swapped columns?).",
    ),
    "token_too_long": (Outcome.INVALID, "Token longer than 4096 characters."),
    "malformed_token": (Outcome.INVALID, "Token has characters an FCM token never has."),
    "invalid_os_version": (Outcome.INVALID, "osVersion could not be understood for this platform."),
    # rejected (permanent 4xx from Masivo)
    "customer_not_found": (Outcome.REJECTED, "Masivo answered 404: the customer does not exist."),
    "bad_request": (Outcome.REJECTED, "Masivo answered 400 for this row; see the error excerpt."),
    "conflict": (Outcome.REJECTED, "Masivo answered 409."),
    "unprocessable": (Outcome.REJECTED, "Masivo answered 422."),
    "client_error": (Outcome.REJECTED, "Masivo answered another 4xx for this row."),
    # failed (transient, retries exhausted)
    "server_error": (Outcome.FAILED, "Masivo answered 5xx on every attempt."),
    "timeout": (Outcome.FAILED, "The request timed out on every attempt."),
    "connection_error": (Outcome.FAILED, "The connection failed on every attempt."),
    "rate_limited": (Outcome.FAILED, "Still rate limited (429) when the retry budget ran out."),
    # aborted
    "marketing_automation_disabled": (
        Outcome.ABORTED,
        "Masivo says marketing automation is not enabled for the account; the run stopped.",
    ),
    "unauthorized": (
        Outcome.ABORTED,
        "Masivo refused the credentials (401 after renewal); the run stopped.",
    ),
    "auth_failed": (Outcome.ABORTED, "Could not obtain an access token; the run stopped."),
    "systemic_failure": (
        Outcome.ABORTED,
        "Many consecutive calls failed the same way; the run stopped.",
    ),
    "interrupted": (
        Outcome.ABORTED,
        "The run was interrupted (Ctrl-C / SIGTERM) before this row was done.",
    ),
    "state_write_failed": (
        Outcome.ABORTED,
        "The state store could not be written (disk full?); the run stopped.",
    ),
}


# The types of the `outcome` and `reason` columns while a run is in memory. A value outside these
# tables cannot be stored in them (polars refuses the cast), and each row holds one byte instead of
# a 16-byte string view: normalize writes both columns for every row of a batch.
OUTCOME_DTYPE = pl.Enum(OUTCOMES)
REASON_DTYPE = pl.Enum(list(REASONS))


def outcome_of(reason: str) -> Outcome:
    """The outcome a reason code belongs to."""
    return REASONS[reason][0]


def reasons_for(outcome: Outcome) -> list[str]:
    return [code for code, (o, _) in REASONS.items() if o is outcome]


def reasons_markdown() -> str:
    """docs/reasons.md, generated from REASONS so the docs cannot drift from the code."""
    lines = [
        "# Outcomes and reason codes",
        "",
        "Generated by `python -m pipeline.outcomes > docs/reasons.md` from `pipeline/outcomes.py`;",
        "a test fails when this page and the code disagree.",
        "",
    ]
    for outcome in Outcome:
        lines += [f"## `{outcome.value}`", "", "| reason | meaning |", "|---|---|"]
        lines += [
            f"| `{code}` | {meaning} |"
            for code in reasons_for(outcome)
            for meaning in [REASONS[code][1]]
        ]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reasons_markdown(), end="")

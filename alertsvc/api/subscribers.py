"""The JSON API's subscriber export and erasure.

The address travels in the JSON body, never the URL, so it stays out of access logs; the
audit log names the subscriber by id only. The same services serve the subscriber's own
"download my data" and "delete my data".
"""

from __future__ import annotations

from typing import Any

from flask import Response

from alertsvc.addresses import InvalidAddress, normalise_email
from alertsvc.api.blueprint import (
    View,
    bp,
    invalid,
    json_body_errors,
    load_json_object,
    not_found,
    requires,
)
from alertsvc.api.schemas import (
    ErasedSchema,
    ErrorSchema,
    SubscriberAddressSchema,
    SubscriberExportSchema,
)
from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.models import Subscriber
from alertsvc.subscriptions.services import erase_subscriber, export_subscriber, find_subscriber

_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SubscriberAddress"}}},
}
NO_SUBSCRIBER = "No subscriber has that address."


def _subscriber() -> Subscriber | Response:
    """The subscriber named by the body's address, or the 4xx answer (in a transaction)."""
    loaded = load_json_object(SubscriberAddressSchema(), "the address")
    if isinstance(loaded, Response):
        return loaded
    try:
        email = normalise_email(loaded["email"])
    except InvalidAddress:
        return invalid({"email": ["Not an email address."]})
    subscriber = find_subscriber(email)
    if subscriber is None or subscriber.erased_at is not None:
        return not_found(NO_SUBSCRIBER)
    return subscriber


def _by_address(view: View) -> View:
    """Document the answers both routes give before they act: ``_subscriber``'s."""
    for status, description in ((404, NO_SUBSCRIBER), (422, "Not an address: see `errors`.")):
        view = bp.alt_response(status, schema=ErrorSchema, description=description)(view)
    return json_body_errors(view)


@bp.route("/subscribers/export", methods=["POST"])
@bp.doc(
    summary="Export everything stored about a subscriber",
    description="Scope `subscribers:admin`. The address goes in the body.",
    requestBody=_BODY,
)
@bp.alt_response(200, schema=SubscriberExportSchema, description="The data.", success=True)
@_by_address
@requires("subscribers:admin")
def export() -> Any:
    with transaction():
        subscriber = _subscriber()
        if isinstance(subscriber, Response):
            return subscriber
        data = export_subscriber(subscriber)
        record_audit("subscriber.export", f"subscriber {subscriber.id}")
    return data


@bp.route("/subscribers/erase", methods=["POST"])
@bp.doc(
    summary="Erase a subscriber",
    description=(
        "Scope `subscribers:admin`. Ends every subscription (`erased`), cancels queued "
        "mail, removes signup requests and blanks the address. Cannot be undone."
    ),
    requestBody=_BODY,
)
@bp.response(200, ErasedSchema)
@_by_address
@requires("subscribers:admin")
def erase() -> Any:
    with transaction():
        subscriber = _subscriber()
        if isinstance(subscriber, Response):
            return subscriber
        subscriber_id = subscriber.id
        erase_subscriber(subscriber)
        record_audit("subscriber.erase", f"subscriber {subscriber_id}")
    return {"erased": True, "subscriber_id": subscriber_id}

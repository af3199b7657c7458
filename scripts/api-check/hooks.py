"""schemathesis hooks for scripts/api-check.sh.

Signs payment notifications that carry an `X-Signature` header the way a payment provider does (`X-Signature`: hex HMAC-SHA256
of the raw body under SECKILL_PAYMENT_SECRET), so that schemathesis reaches past the signature
check into the handler. The body is serialised here exactly as it will be sent and handed to
the transport as bytes, so the signature covers the very bytes on the wire.
"""

import hashlib
import hmac
import json
import os

import schemathesis

SECRET = os.environ["SECKILL_PAYMENT_SECRET"].encode()


@schemathesis.hook
def before_call(context, case, **kwargs):
    if (case.method.upper(), case.operation.path) != ("POST", "/v1/payments/notify"):
        return
    # A case without the header is schemathesis checking that it is required: left unsigned.
    names = [name for name in (case.headers or {}) if name.lower() == "x-signature"]
    if not names:
        return
    if isinstance(case.body, (bytes, bytearray)):
        raw = bytes(case.body)
    else:
        try:
            raw = json.dumps(case.body, allow_nan=False).encode()
        except (TypeError, ValueError):
            return  # not JSON: sent unsigned, refused as such
    case.headers[names[0]] = hmac.new(SECRET, raw, hashlib.sha256).hexdigest()

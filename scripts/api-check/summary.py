"""Counts what schemathesis sent, from its NDJSON report: requests by operation and status.

    python3 scripts/api-check/summary.py REPORT.ndjson
"""

import collections
import json
import re
import sys

by_status = collections.Counter()
total = 0


def interactions(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "interactions" and isinstance(value, dict):
                yield from value.values()
            else:
                yield from interactions(value)
    elif isinstance(node, list):
        for value in node:
            yield from interactions(value)


def route_of(uri):
    """The spec's path for a request's URI (ids folded), or `other`."""
    path = re.sub(r"^https?://[^/]+", "", uri).split("?")[0]
    for pattern, route in [
        (r"^/v1/activities/[^/]+$", "/v1/activities/{id}"),
        (r"^/v1/activities/[^/]+/orders$", "/v1/activities/{id}/orders"),
        (r"^/v1/activities/[^/]+/order$", "/v1/activities/{id}/order"),
        (r"^/v1/orders/[^/]+$", "/v1/orders/{order_id}"),
        (r"^/demo/[^/]*$", "/demo/{file}"),
    ]:
        if re.match(pattern, path):
            return route
    return path if path in ("/v1/payments/notify", "/healthz", "/readyz", "/metrics") else "other"


with open(sys.argv[1]) as report:
    for line in report:
        for seen in interactions(json.loads(line)):
            response = seen.get("response") or {}
            total += 1
            request = seen["request"]
            by_status[(route_of(request["uri"]), request["method"], response.get("status_code", "none"))] += 1

print(f"requests sent: {total}")
for (route, method, status), count in sorted(by_status.items(), key=str):
    print(f"  {route:28} {method:8} {status}: {count}")

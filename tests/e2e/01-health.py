"""01 health: GET /api/v1/health and /health through nginx, the error shape
of what nginx refuses itself, and health while a store or the API is down
(doc/protocol.md "Errors" and the /health row)."""

import parley_test
from parley_test import assert_error, dev, request, wait_for

OK = {"status": "ok", "postgres": "ok", "redis": "ok"}


def health_is(path, status, body):
    """A wait_for predicate: GET path answers exactly status and body (else
    it raises, so a timeout reports the last answer)."""
    def check():
        got_status, _, got_body = request("GET", path)
        assert (got_status, got_body) == (status, body), "got %d %r" % (got_status, got_body)
        return True
    return check


def test_health_ok():
    status, headers, body = request("GET", "/api/v1/health")
    assert status == 200, "status %d: %r" % (status, body)
    assert (headers.get("Content-Type") or "").startswith("application/json"), headers.get("Content-Type")
    assert body == OK, body


def test_root_health_ok():
    status, _, body = request("GET", "/health")
    assert status == 200, "status %d: %r" % (status, body)
    assert body == OK, body


def test_unknown_route_is_404():
    assert_error(request("GET", "/api/v1/nope"), 404, "not_found")


def test_wrong_method_is_405():
    assert_error(request("POST", "/api/v1/health"), 405, "method_not_allowed")


def test_body_over_nginx_limit_is_413_json():
    big = b"x" * (2 * 1024 * 1024)
    assert_error(request("POST", "/api/v1/health", body=big,
                         headers={"Content-Type": "application/octet-stream"}), 413, "too_large")


def test_redis_down_degrades_then_recovers():
    dev("stop", "redis")
    try:
        degraded = {"status": "degraded", "postgres": "ok", "redis": "down"}
        wait_for(health_is("/api/v1/health", 503, degraded), 10, "503 with redis down")
        status, _, body = request("GET", "/health")
        assert (status, body) == (503, degraded), (status, body)
    finally:
        dev("start", "redis")
    wait_for(health_is("/api/v1/health", 200, OK), 20, "health back to ok after redis restart")


def test_postgres_down_degrades_then_recovers():
    dev("stop", "postgres")
    try:
        degraded = {"status": "degraded", "postgres": "down", "redis": "ok"}
        wait_for(health_is("/api/v1/health", 503, degraded), 10, "503 with postgres down")
    finally:
        dev("start", "postgres")
    # The API reconnects on its own.
    wait_for(health_is("/api/v1/health", 200, OK), 20, "health back to ok after postgres restart")


def test_api_down_is_503_json_from_nginx():
    dev("stop", "api")
    try:
        response = request("GET", "/api/v1/health")
        assert_error(response, 503, "unavailable")
    finally:
        dev("start", "api")
    wait_for(health_is("/api/v1/health", 200, OK), 20, "health back to ok after api restart")


if __name__ == "__main__":
    parley_test.run()
